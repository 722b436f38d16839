//! Pages: what each read RPC shows, read in one statement, so a read costs
//! one round trip whatever it shows.

use async_trait::async_trait;

use crate::model::{ChatKey, ChatRow, MemberRow, MessageId, MessageRow, UserId};
use crate::proto::types;
use crate::store::{ConversationRange, StoreResult};

/// A conversation as its member sees it in a list or when opening it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatEntry {
    pub chat: ChatRow,
    pub member: MemberRow,
    /// The chat's newest message, if it has one.
    pub last: Option<LastMessage>,
    /// A group's members, oldest first (a group's size is capped); empty
    /// for a direct chat.
    pub participants: Vec<UserId>,
}

/// A conversation's newest message as a list or an opened chat shows it:
/// no more than is rendered, since each column read costs a page its
/// share of the database's time (see `store/postgres/pages.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct LastMessage {
    pub id: MessageId,
    pub author: UserId,
    pub body: types::Message,
}

impl From<MessageRow> for LastMessage {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            author: row.author,
            body: row.body,
        }
    }
}

/// Which messages of a chat a history page holds: up to `older` messages
/// below `below` and up to `newer` above `above`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRange {
    /// `None`: from the newest message.
    pub below: Option<MessageId>,
    pub older: usize,
    pub above: MessageId,
    pub newer: usize,
}

/// A page of a chat's history, with what decides whether the reader may see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPage {
    /// The chat the key names, if it exists (a group only when it is one).
    pub chat: Option<ChatRow>,
    /// Whether the reader is a member of it.
    pub member: bool,
    /// Newest first. Empty for a group the reader is not a member of.
    pub messages: Vec<MessageRow>,
}

#[async_trait]
pub trait PageStore: Send {
    /// One page of `user`'s conversations, newest activity first, each with
    /// its chat, last message and participants.
    async fn chat_page(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>>;
    /// The chat a key names as its member `user` sees it; `None` when the
    /// chat does not exist or `user` is not a member.
    async fn chat_entry(&mut self, chat: ChatKey, user: UserId) -> StoreResult<Option<ChatEntry>> {
        Ok(self.chat_entries(&[(chat, user)]).await?.pop().flatten())
    }
    /// [`PageStore::chat_entry`] of each key and member, in the order asked,
    /// in one statement however many (a key may come more than once).
    async fn chat_entries(
        &mut self,
        wanted: &[(ChatKey, UserId)],
    ) -> StoreResult<Vec<Option<ChatEntry>>>;
    /// A page of the chat a key names, with whether `user` is a member.
    async fn history_page(
        &mut self,
        chat: ChatKey,
        user: UserId,
        range: HistoryRange,
    ) -> StoreResult<HistoryPage> {
        Ok(self
            .history_pages(&[(chat, user, range)])
            .await?
            .pop()
            .unwrap_or_default())
    }
    /// [`PageStore::history_page`] of each key, reader and range, in the
    /// order asked, in one statement however many.
    async fn history_pages(
        &mut self,
        wanted: &[(ChatKey, UserId, HistoryRange)],
    ) -> StoreResult<Vec<HistoryPage>>;
}
