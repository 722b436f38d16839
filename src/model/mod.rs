//! The nouns every layer speaks: ids, chats, members, messages, invites, the
//! changes the update log and the bus carry, and the clock with the id
//! generator. Plain data with the arithmetic that belongs to it (a chat's
//! scope, a member's unread count, a change's rendering and encoding);
//! [`crate::store`], [`crate::bus`] and [`crate::domain`] import it, and it
//! imports nothing of theirs, only the generated [`crate::proto`] types.
//!
//! What a store operation takes or returns as a whole (a page range, a
//! batch's writes, the checks read before a send or a mark-read) is not a
//! noun: those shapes live with the `Tx` contract in [`crate::store`].

pub mod change;
pub mod chat;
pub mod clock;
pub mod ids;
pub mod invite;
pub mod member;
pub mod message;
pub mod snowflake;
pub mod typing;

pub use change::{Change, LoggedUpdate, NewChange, Personal, Scope};
pub use chat::{ChatKey, ChatKind, ChatRow};
pub use ids::{ChatId, MessageId, UserId};
pub use invite::InviteRow;
pub use member::{MemberRow, ReadMove, ReadPoint, ReadState};
pub use message::MessageRow;
pub use snowflake::Snowflakes;
pub use typing::TypingAction;
