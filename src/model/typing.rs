//! What a typing user is doing, as the protocol numbers it.

use crate::proto::chats;

/// A [`chats::TypingAction`] the protocol knows; unknown numbers never get
/// past the request boundary, so Redis and the bus only carry known ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypingAction(chats::TypingAction);

impl TypingAction {
    /// The wire number, or `None` when the protocol has no such action.
    pub fn from_wire(number: i32) -> Option<Self> {
        chats::TypingAction::try_from(number).ok().map(Self)
    }

    pub fn wire(self) -> i32 {
        self.0 as i32
    }
}

impl Default for TypingAction {
    fn default() -> Self {
        Self(chats::TypingAction::Typing)
    }
}
