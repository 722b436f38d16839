//! Protocol fields into domain values, each checked once at the boundary;
//! errors name the offending field.

use crate::domain::ids::{ChatId, MessageId, UserId};
use crate::domain::limits::MAX_LIST_ITEMS;
use crate::domain::target::ChatTarget;
use crate::error::{Error, Result};
use crate::proto::{media, refs};

const MAX_URL_BYTES: usize = 2048;
const MAX_NAME_BYTES: usize = 255;

pub fn target(field: &str, chat_ref: Option<&refs::ChatRef>, caller: UserId) -> Result<ChatTarget> {
    let chat_ref = chat_ref.ok_or_else(|| Error::invalid(field, "required"))?;
    match &chat_ref.r#ref {
        None => Err(Error::invalid(
            field,
            "no chat variant set (user, group or self)",
        )),
        Some(refs::chat_ref::Ref::Self_(_)) => Ok(ChatTarget::Saved),
        Some(refs::chat_ref::Ref::User(user)) => {
            let peer = user_id(&format!("{field}.user.user_id"), user.user_id)?;
            if peer == caller {
                return Err(Error::invalid(
                    &format!("{field}.user.user_id"),
                    "is the caller; use `self` for saved messages",
                ));
            }
            Ok(ChatTarget::Direct(peer))
        }
        Some(refs::chat_ref::Ref::Group(group)) => Ok(ChatTarget::Group(ChatId(nonzero(
            &format!("{field}.group.group_id"),
            group.group_id,
        )?))),
        Some(refs::chat_ref::Ref::Channel(_)) => Err(Error::invalid(
            field,
            "channels are served by the communities service",
        )),
    }
}

pub fn nonzero(field: &str, id: u64) -> Result<u64> {
    if id == 0 {
        return Err(Error::invalid(field, "must not be 0"));
    }
    Ok(id)
}

pub fn user_id(field: &str, id: u64) -> Result<UserId> {
    nonzero(field, id).map(UserId)
}

pub fn message_id(field: &str, id: u64) -> Result<MessageId> {
    nonzero(field, id).map(MessageId)
}

pub fn bounded_len<T>(field: &str, items: &[T]) -> Result<()> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(Error::invalid(
            field,
            format!("{} items, at most {MAX_LIST_ITEMS} allowed", items.len()),
        ));
    }
    Ok(())
}

fn short(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(field, format!("longer than {max} bytes")));
    }
    Ok(())
}

/// Sent media references become stored message media, kept as given.
pub fn media(field: &str, refs: Vec<media::MediaRef>) -> Result<Vec<media::MessageMedia>> {
    bounded_len(field, &refs)?;
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let field = format!("{field}[{i}]");
            let media = match r.r#ref {
                Some(media::media_ref::Ref::Uploaded(up)) => {
                    let file = up.file.ok_or_else(|| {
                        Error::invalid(&format!("{field}.uploaded.file"), "required")
                    })?;
                    nonzero(&format!("{field}.uploaded.file.id"), file.id)?;
                    short(
                        &format!("{field}.uploaded.mimetype"),
                        &up.mimetype,
                        MAX_NAME_BYTES,
                    )?;
                    let filename = up.filename.or(Some(file.name).filter(|n| !n.is_empty()));
                    if let Some(name) = &filename {
                        short(&format!("{field}.uploaded.filename"), name, MAX_NAME_BYTES)?;
                    }
                    media::message_media::Media::File(media::MediaFile {
                        file: Some(media::File {
                            file_id: file.id,
                            region: 0,
                            size: 0,
                            mimetype: up.mimetype,
                            filename,
                            metadata: up.metadata,
                        }),
                    })
                }
                Some(media::media_ref::Ref::Embed(embed)) => {
                    if embed.url.trim().is_empty() {
                        return Err(Error::invalid(&format!("{field}.embed.url"), "required"));
                    }
                    short(&format!("{field}.embed.url"), &embed.url, MAX_URL_BYTES)?;
                    media::message_media::Media::Embed(media::MediaEmbed {
                        url: embed.url,
                        ..Default::default()
                    })
                }
                None => return Err(Error::invalid(&field, "no media variant set")),
            };
            Ok(media::MessageMedia { media: Some(media) })
        })
        .collect()
}

/// A ref that must name a group, for the calls that only groups have.
pub fn group(field: &str, chat_ref: Option<&refs::ChatRef>, caller: UserId) -> Result<ChatId> {
    match target(field, chat_ref, caller)? {
        ChatTarget::Group(id) => Ok(id),
        _ => Err(Error::invalid(field, "must be a group")),
    }
}

/// A group name: 1 to 128 characters once trimmed.
pub fn group_name(field: &str, name: &str) -> Result<String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > crate::domain::limits::MAX_GROUP_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!(
                "must be 1 to {} characters after trimming, got {chars}",
                crate::domain::limits::MAX_GROUP_NAME_CHARS
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An invite code as a caller hands it back.
pub fn invite_code(code: &str) -> Result<&str> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(Error::invalid("code", "must be 1 to 64 characters"));
    }
    Ok(code)
}
