//! Protocol fields into domain values, each checked once at the boundary;
//! errors name the offending field.

use crate::domain::limits::{
    MAX_CLOAK_NAME_CHARS, MAX_LIST_ITEMS, MAX_MEDIA_ITEMS, MAX_NAME_BYTES, MAX_PREVIEW_BYTES,
    MAX_PRE_LANGUAGE_BYTES, MAX_URL_BYTES,
};
use crate::domain::target::ChatTarget;
use crate::error::{Error, Result};
use crate::model::{ChatId, MessageId, UserId};
use crate::proto::types::message_entity::Entity;
use crate::proto::{media, refs, types};

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

/// An inline thumbnail (an image's or a user's photo preview).
pub fn preview(field: &str, bytes: &[u8]) -> Result<()> {
    short(field, bytes, MAX_PREVIEW_BYTES)
}

/// The strings inside entities: `textUrl` urls and `pre` languages. Ranges
/// and counts are `domain::text`'s to check.
pub fn entity_fields(field: &str, entities: &[types::MessageEntity]) -> Result<()> {
    for (i, entity) in entities.iter().enumerate() {
        match &entity.entity {
            Some(Entity::TextUrl(link)) => short(
                &format!("{field}[{i}].textUrl.url"),
                link.url.as_bytes(),
                MAX_URL_BYTES,
            )?,
            Some(Entity::Pre(pre)) => {
                if let Some(language) = &pre.language {
                    short(
                        &format!("{field}[{i}].pre.language"),
                        language.as_bytes(),
                        MAX_PRE_LANGUAGE_BYTES,
                    )?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A bot's cloak name: 1 to [`MAX_CLOAK_NAME_CHARS`] characters once trimmed.
pub fn cloak_name(field: &str, name: &str) -> Result<String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_CLOAK_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_CLOAK_NAME_CHARS} characters after trimming, got {chars}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Sent media references become stored message media, kept as given.
pub fn media(field: &str, refs: Vec<media::MediaRef>) -> Result<Vec<media::MessageMedia>> {
    if refs.len() > MAX_MEDIA_ITEMS {
        return Err(Error::invalid(
            field,
            format!("{} items, at most {MAX_MEDIA_ITEMS} allowed", refs.len()),
        ));
    }
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
                        &format!("{field}.uploaded.file.name"),
                        file.name.as_bytes(),
                        MAX_NAME_BYTES,
                    )?;
                    short(
                        &format!("{field}.uploaded.mimetype"),
                        up.mimetype.as_bytes(),
                        MAX_NAME_BYTES,
                    )?;
                    if let Some(name) = &up.filename {
                        short(
                            &format!("{field}.uploaded.filename"),
                            name.as_bytes(),
                            MAX_NAME_BYTES,
                        )?;
                    }
                    let image = up.metadata.as_ref().and_then(|m| match &m.metadata {
                        Some(media::file_metadata::Metadata::Image(image)) => Some(image),
                        _ => None,
                    });
                    if let Some(bytes) = image.and_then(|i| i.preview.as_ref()) {
                        preview(&format!("{field}.uploaded.metadata.image.preview"), bytes)?;
                    }
                    let filename = up.filename.or(Some(file.name).filter(|n| !n.is_empty()));
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
                    short(
                        &format!("{field}.embed.url"),
                        embed.url.as_bytes(),
                        MAX_URL_BYTES,
                    )?;
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
