//! A group invite as kept.

use super::ids::{ChatId, UserId};

/// A group invite.
#[derive(Clone, Debug, PartialEq)]
pub struct InviteRow {
    pub code: String,
    pub chat_id: ChatId,
    pub creator: UserId,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<u64>,
    /// `None`: unlimited.
    pub max_uses: Option<u32>,
    pub uses: u32,
}

impl InviteRow {
    /// Whether it can still be used at `now` (unix ms): neither expired nor
    /// used up. Invites that are not are dead: nobody can use them again.
    pub fn usable(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now) && self.max_uses.is_none_or(|max| self.uses < max)
    }
}
