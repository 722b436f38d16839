//! The values a request carries, each checked once where it enters: a type
//! here can only be made by parsing, so holding one is proof that its bounds
//! hold, and nothing downstream checks them again. Every refusal names the
//! request field it came from.

mod message;
mod names;
mod page;
mod text;

pub use message::{MessageEdit, NewMessage, Reply, TextEdit};
pub use names::{CloakName, DisplayName, GroupName, InviteCode, Profile, Username};
pub use page::{ChatWindow, Page};
pub use text::{Draft, Entities, MessageText};

use crate::error::{Error, Result};

/// `raw` trimmed, 1 to `max` characters long.
fn trimmed_chars(field: &str, raw: &str, max: usize) -> Result<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > max {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters after trimming, got {chars}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// At most `max` bytes.
pub fn short(field: &str, value: &[u8], max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("{} bytes, at most {max} allowed", value.len()),
        ));
    }
    Ok(())
}
