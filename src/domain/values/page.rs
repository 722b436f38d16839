//! How many items a page may hold.

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

impl Default for Page {
    fn default() -> Self {
        Self(DEFAULT_PAGE)
    }
}
