//! Which items a page holds, and how many.

use crate::domain::limits::{DEFAULT_PAGE, MAX_PAGE};

/// A page size between 1 and [`MAX_PAGE`]: an absent or 0 request takes the
/// default, a larger one the cap (a page is a hint, never an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page(usize);

impl Page {
    pub fn parse(requested: Option<u32>) -> Self {
        Self(match requested {
            None | Some(0) => DEFAULT_PAGE,
            Some(n) => (n as usize).min(MAX_PAGE),
        })
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// GetChats' window: conversations whose sort key is below `before` and
/// above `after` (each when set), newest first, one page of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatWindow {
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub page: Page,
}

impl Default for Page {
    fn default() -> Self {
        Self(DEFAULT_PAGE)
    }
}
