//! Protocol fields into domain values, each checked once at the boundary;
//! errors name the offending field.

use crate::domain::limits::{
    MAX_LIST_ITEMS, MAX_MEDIA_ITEMS, MAX_NAME_BYTES, MAX_PREVIEW_BYTES, MAX_URL_BYTES,
};
use crate::domain::target::ChatTarget;
use crate::domain::values::{self, MessageText};
use crate::error::{Error, Result};
use crate::model::{ChatId, MessageId, TypingAction, UserId};
use crate::proto::{media, refs};
pub use values::short;

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

/// An inline thumbnail (an image's or a user's photo preview).
pub fn preview(field: &str, bytes: &[u8]) -> Result<()> {
    short(field, bytes, MAX_PREVIEW_BYTES)
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

/// `SetTyping.action`: a known action, typing when unset.
pub fn typing_action(field: &str, action: Option<i32>) -> Result<TypingAction> {
    match action {
        None => Ok(TypingAction::default()),
        Some(number) => TypingAction::from_wire(number)
            .ok_or_else(|| Error::invalid(field, format!("unknown value {number}"))),
    }
}

/// A quote of the replied-to message: its text and entities, bounded like a
/// message's.
pub fn quote(
    field: &str,
    q: crate::proto::messages::send_message::reply_to::Quote,
) -> Result<crate::proto::types::message::message_reply_info::Quote> {
    let (message, entities) = MessageText::parse(
        &format!("{field}.message"),
        q.message,
        &format!("{field}.entities"),
        q.entities,
    )?
    .into_parts();
    Ok(crate::proto::types::message::message_reply_info::Quote {
        message,
        entities,
        offset: q.offset,
    })
}
