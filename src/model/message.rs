//! A message as kept.

use super::ids::{ChatId, MessageId, UserId};
use crate::proto::types;

/// A message as kept: the protocol message without its (per-reader) chat_ref.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRow {
    pub chat_id: ChatId,
    pub id: MessageId,
    pub author: UserId,
    /// Its place in the chat: 1, 2, 3, ... in id order.
    pub ordinal: u64,
    pub client_id: Option<u64>,
    /// Users the text mentions, for unread-mention counters.
    pub mentions: Vec<UserId>,
    pub body: types::Message,
}
