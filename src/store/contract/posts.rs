//! Posting: what a send checks, read in one round trip, and a batch of new
//! messages written in one go with everything it moves.

use async_trait::async_trait;

use crate::model::{
    ChatId, ChatKey, ChatRow, LoggedUpdate, MemberRow, MessageId, MessageRow, NewChange, ReadMove,
    UserId,
};
use crate::proto::types;
use crate::store::StoreResult;

/// Everything a batch of new messages writes besides the log, applied in
/// one go under the chat's lock.
#[derive(Clone, Debug, Default)]
pub struct PostWrites {
    pub chat: ChatId,
    /// With ids and ordinals above every earlier message of the chat.
    pub messages: Vec<MessageRow>,
    /// The chat's `msg_seq` and `last_message` after the batch.
    pub msg_seq: u64,
    pub last_message: Option<MessageId>,
    /// Memberships that start with the batch (a direct chat's peer).
    pub new_members: Vec<MemberRow>,
    /// Authors: their read pointer moves to their newest message of the
    /// batch, their draft clears, and their mention count is set.
    pub readers: Vec<ReadMove>,
    /// Other members mentioned: (user, mentions to add).
    pub mentioned: Vec<(UserId, u32)>,
}

/// What a send checks before it is queued, read together.
#[derive(Clone, Debug, Default)]
pub struct SendContext {
    /// The chat, if it exists (a group only when it is one).
    pub chat: Option<ChatRow>,
    /// Whether the author is a member of it.
    pub member: bool,
    pub author: Option<types::User>,
    /// The message the author already sent with this client id.
    pub sent: Option<MessageId>,
}

#[async_trait]
pub trait PostStore: Send {
    /// A send's chat, the author's membership and user, and an earlier
    /// message with the same client id, in one round trip.
    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext>;
    /// Writes a batch of new messages and appends their changes to the log.
    /// Fails with [`StoreError::Duplicate`](crate::store::StoreError::Duplicate)
    /// when an (author, client_id) is taken. See also
    /// [`Tx::commit_posts`](crate::store::Tx::commit_posts).
    async fn write_posts(
        &mut self,
        writes: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>>;
}
