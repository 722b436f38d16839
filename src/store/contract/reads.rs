//! Read state: moving a reader's pointer, and keeping the unread and
//! mention counters right when messages are deleted or edited.

use async_trait::async_trait;

use crate::model::{ChatId, ChatKey, ChatRow, MemberRow, MessageId, MessageRow, ReadState, UserId};
use crate::store::StoreResult;

/// What MarkChatRead checks, read together.
#[derive(Clone, Debug, Default)]
pub struct ReadContext {
    pub chat: Option<ChatRow>,
    /// The reader's membership, when the chat exists.
    pub member: Option<MemberRow>,
    /// The ordinal of the message to mark read, when it is in the chat.
    pub ordinal: Option<u64>,
}

#[async_trait]
pub trait ReadStore: Send {
    /// A reader's chat, membership and target message, in one round trip.
    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext>;
    /// Moves `user`'s read pointer forward to `message` (a no-op returning
    /// `None` when it is there or past it already), locking only the
    /// member's row. Costs the same however many messages it marks read.
    async fn mark_read(
        &mut self,
        user: UserId,
        chat: ChatId,
        message: MessageId,
        ordinal: u64,
    ) -> StoreResult<Option<ReadState>>;
    /// Takes deleted messages back out of the counts of members who had not
    /// read them yet.
    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()>;
    /// Moves mention counters of members who have not read `message` yet
    /// after an edit changed whom it mentions.
    async fn remention(
        &mut self,
        message: &MessageRow,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()>;
}
