//! Message text and its entities: validation, and who a text mentions.

use super::limits::{MAX_LIST_ITEMS, MAX_MESSAGE_BYTES, MAX_TEXT_CHARS};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::proto::types::message_entity::Entity;
use crate::proto::types::MessageEntity;
use crate::proto::{refs, types};

/// Checks length and that every entity lies inside the text, counting UTF-16
/// code units as JavaScript clients do.
pub fn validate(field: &str, text: &str, entities: &[MessageEntity]) -> Result<()> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            field,
            format!("{chars} characters, at most {MAX_TEXT_CHARS} allowed"),
        ));
    }
    validate_entities(&format!("{field}.entities"), text, entities)
}

pub fn validate_entities(field: &str, text: &str, entities: &[MessageEntity]) -> Result<()> {
    if entities.len() > MAX_LIST_ITEMS {
        return Err(Error::invalid(
            field,
            format!(
                "{} entities, at most {MAX_LIST_ITEMS} allowed",
                entities.len()
            ),
        ));
    }
    let units = text.encode_utf16().count() as u64;
    for (i, entity) in entities.iter().enumerate() {
        let end = u64::from(entity.start_index) + u64::from(entity.length);
        if entity.length == 0 || end > units {
            return Err(Error::invalid(
                &format!("{field}[{i}]"),
                format!(
                    "range {}..{end} is empty or outside the text ({units} UTF-16 units)",
                    entity.start_index
                ),
            ));
        }
        if entity.entity.is_none() {
            return Err(Error::invalid(
                &format!("{field}[{i}]"),
                "no entity kind set",
            ));
        }
    }
    Ok(())
}

/// The message as a whole, as it would be stored and sent out, must encode
/// to at most [`MAX_MESSAGE_BYTES`]. Ids, the chat ref and the edit time are
/// counted at their largest, so that the bound holds for every recipient's
/// copy and after any edit time is set.
pub fn message_size(field: &str, body: &types::Message) -> Result<()> {
    use prost::Message as _;
    const WIDEST: u64 = u64::MAX;
    // `reply_to` is deprecated but still stored for clients that read only it.
    #[allow(deprecated)]
    let widest = types::Message {
        chat_ref: Some(refs::ChatRef {
            r#ref: Some(refs::chat_ref::Ref::Group(refs::GroupRef {
                group_id: WIDEST,
            })),
        }),
        message_id: WIDEST,
        author_id: WIDEST,
        reply_to: body.reply_to.map(|_| WIDEST),
        edited_at: Some(WIDEST),
        reply: body
            .reply
            .as_ref()
            .map(|r| types::message::MessageReplyInfo {
                message_id: r.message_id.map(|_| WIDEST),
                quote: r.quote.clone(),
            }),
        ..body.clone()
    };
    let bytes = widest.encoded_len();
    if bytes > MAX_MESSAGE_BYTES {
        return Err(Error::invalid(
            field,
            format!("encoded message is {bytes} bytes, at most {MAX_MESSAGE_BYTES} allowed"),
        ));
    }
    Ok(())
}

/// What a text's mention entities point at, before usernames are resolved.
#[derive(Debug, Default, PartialEq)]
pub struct Mentions {
    pub ids: Vec<UserId>,
    /// Without the leading `@`.
    pub usernames: Vec<String>,
}

/// Reads mentions from entities already validated against `text`: a
/// `user_mention` covering a user's id in decimal (optionally after `@`), or
/// a `username` entity covering `@` and a username.
pub fn mentions(text: &str, entities: &[MessageEntity]) -> Mentions {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut found = Mentions::default();
    for entity in entities {
        let start = entity.start_index as usize;
        let end = start + entity.length as usize;
        let Some(covered) = units.get(start..end).map(String::from_utf16_lossy) else {
            continue;
        };
        match entity.entity {
            Some(Entity::UserMention(_)) => {
                if let Ok(id) = covered.strip_prefix('@').unwrap_or(&covered).parse::<u64>() {
                    if id != 0 && !found.ids.contains(&UserId(id)) {
                        found.ids.push(UserId(id));
                    }
                }
            }
            Some(Entity::Username(_)) => {
                if let Some(name) = covered.strip_prefix('@').filter(|n| !n.is_empty()) {
                    if !found.usernames.iter().any(|n| n == name) {
                        found.usernames.push(name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::message_entity::UserMentionEntity;

    fn entity(start: u32, length: u32, kind: Entity) -> MessageEntity {
        MessageEntity {
            start_index: start,
            length,
            entity: Some(kind),
        }
    }

    #[test]
    fn entity_offsets_count_utf16_units() {
        // "😀" is two UTF-16 units, so "😀ab" has four.
        let text = "😀ab";
        assert!(validate("message", text, &[entity(0, 4, Entity::Bold(true))]).is_ok());
        assert!(validate("message", text, &[entity(1, 4, Entity::Bold(true))]).is_err());
    }

    #[test]
    fn mentions_read_ids_and_usernames_from_the_covered_text() {
        let text = "hi @42 and @alice and 77";
        let found = mentions(
            text,
            &[
                entity(3, 3, Entity::UserMention(UserMentionEntity {})),
                entity(11, 6, Entity::Username(true)),
                entity(22, 2, Entity::UserMention(UserMentionEntity {})),
            ],
        );
        assert_eq!(found.ids, vec![UserId(42), UserId(77)]);
        assert_eq!(found.usernames, vec!["alice".to_owned()]);
    }

    #[test]
    fn too_long_text_is_refused_naming_the_field() {
        let text = "x".repeat(MAX_TEXT_CHARS + 1);
        let error = validate("message", &text, &[]).unwrap_err();
        assert!(error.to_string().starts_with("message:"), "{error}");
    }
}
