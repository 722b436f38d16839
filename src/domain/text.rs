//! A message as a whole: its encoded size, and who its text mentions. The
//! text and entities themselves are checked where they enter, by
//! [`super::values::MessageText`].

use super::limits::MAX_MESSAGE_BYTES;
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::proto::types::message_entity::Entity;
use crate::proto::types::MessageEntity;
use crate::proto::{refs, types};

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
}
