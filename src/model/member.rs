//! One user's place in one chat, and how their read state moves. The
//! unread count is defined here once, by [`ReadPoint::unread_at`]: the
//! domain and both engines call it (Postgres reads the chat's `msg_seq`
//! and the member's read point, never a count computed in SQL).

use super::ids::{ChatId, MessageId, UserId};

/// One user's place in one chat: their conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRow {
    pub chat_id: ChatId,
    pub user_id: UserId,
    /// When the user joined (a snowflake), for "longest-standing member".
    pub joined: u64,
    /// The newest message id seen in the chat, or the chat id before any:
    /// the conversation's place in GetChats; never moves back.
    pub sort_key: u64,
    /// The read pointer; 0 before anything was read.
    pub last_read: u64,
    /// The ordinal of the newest message at or before `last_read`.
    pub read_seq: u64,
    /// Deleted messages after `read_seq` (none of them this user's).
    pub skipped: u32,
    /// Messages after `last_read` not written by this user: derived by the
    /// store from the chat's `msg_seq` when the row is read, never written.
    pub unread: u32,
    /// Of those, the ones that mention this user.
    pub mentions: u32,
    pub draft: Option<String>,
    pub notif: i32,
}

impl MemberRow {
    /// Where this member's reading stands.
    pub fn read_point(&self) -> ReadPoint {
        ReadPoint {
            read_seq: self.read_seq,
            skipped: self.skipped,
        }
    }

    /// This member's unread count once the chat's newest ordinal is `msg_seq`.
    pub fn unread_at(&self, msg_seq: u64) -> u32 {
        self.read_point().unread_at(msg_seq)
    }
}

/// The two numbers of a member's row that its unread count derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPoint {
    /// [`MemberRow::read_seq`].
    pub read_seq: u64,
    /// [`MemberRow::skipped`].
    pub skipped: u32,
}

impl ReadPoint {
    /// The unread count when the chat's newest ordinal is `msg_seq`: the
    /// ordinals after `read_seq`, less the deleted ones among them; never
    /// below 0, and at most `u32::MAX`.
    pub fn unread_at(self, msg_seq: u64) -> u32 {
        msg_seq
            .saturating_sub(self.read_seq)
            .saturating_sub(u64::from(self.skipped))
            .min(u64::from(u32::MAX)) as u32
    }
}

/// An author's read state after a batch.
#[derive(Clone, Copy, Debug)]
pub struct ReadMove {
    pub user: UserId,
    pub last_read: MessageId,
    pub read_seq: u64,
    /// Mentions of this user in the batch after their own newest message.
    pub mentions: u32,
}

/// A member's read state after `MarkChatRead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub unread: u32,
    pub mentions: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(read_seq: u64, skipped: u32) -> MemberRow {
        MemberRow {
            chat_id: ChatId(1),
            user_id: UserId(2),
            joined: 0,
            sort_key: 0,
            last_read: 0,
            read_seq,
            skipped,
            unread: 0,
            mentions: 0,
            draft: None,
            notif: 0,
        }
    }

    #[test]
    fn unread_counts_the_ordinals_after_the_read_pointer_less_deletions() {
        assert_eq!(member(0, 0).unread_at(0), 0);
        assert_eq!(member(0, 0).unread_at(5), 5);
        assert_eq!(member(3, 0).unread_at(5), 2);
        assert_eq!(member(3, 1).unread_at(5), 1);
        assert_eq!(member(5, 0).unread_at(5), 0);
    }

    #[test]
    fn unread_never_goes_below_zero_nor_past_u32() {
        assert_eq!(member(3, 4).unread_at(5), 0);
        assert_eq!(member(7, 0).unread_at(5), 0);
        assert_eq!(member(0, 0).unread_at(u64::MAX), u32::MAX);
        assert_eq!(member(1, 1).unread_at(u64::from(u32::MAX) + 2), u32::MAX);
    }

    #[test]
    fn a_read_point_counts_as_its_member_does() {
        let m = member(3, 1);
        assert_eq!(m.read_point().unread_at(9), m.unread_at(9));
    }
}
