//! A chat as kept: a direct conversation (saved messages included) or a
//! group, and how a send names one.

use super::change::Scope;
use super::ids::{ChatId, MessageId, UserId};
use crate::proto::types;

/// How a chat's members find each other: a direct chat is keyed by its two
/// users (equal for saved messages), a group by its id alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatKind {
    /// `low <= high`; `low == high` is the user's saved messages.
    Direct {
        low: UserId,
        high: UserId,
    },
    Group,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatRow {
    pub id: ChatId,
    pub kind: ChatKind,
    /// Groups only; empty for direct chats.
    pub name: String,
    pub owner: Option<UserId>,
    pub photo: Option<types::ChatPhoto>,
    pub highlighted: Option<MessageId>,
    /// The newest message still present, if any.
    pub last_message: Option<MessageId>,
    /// The ordinal of the newest message ever sent (1, 2, 3, ... per chat;
    /// deletions leave holes), 0 before any.
    pub msg_seq: u64,
}

impl ChatRow {
    /// How the chat looks to each recipient of a change in it.
    pub fn scope(&self) -> Scope {
        match self.kind {
            ChatKind::Direct { low, high } => Scope::Direct { low, high },
            ChatKind::Group => Scope::Group {
                id: self.id,
                owner: self.owner,
            },
        }
    }
}

/// How a send names its chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKey {
    Group(ChatId),
    /// `low <= high`.
    Direct {
        low: UserId,
        high: UserId,
    },
}
