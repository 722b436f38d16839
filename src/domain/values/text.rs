//! Text a person wrote: a message's or a quote's text with its entities, and
//! a draft. Lengths count characters; entity offsets count UTF-16 code units,
//! as the JavaScript clients that set them do.

use super::short;
use crate::domain::limits::{
    MAX_LIST_ITEMS, MAX_PRE_LANGUAGE_BYTES, MAX_TEXT_CHARS, MAX_URL_BYTES,
};
use crate::error::{Error, Result};
use crate::proto::types::message_entity::Entity;
use crate::proto::types::MessageEntity;

/// Formatting entities, each of a known kind with its strings bounded, at
/// most [`MAX_LIST_ITEMS`] of them. Whether they lie inside a text is
/// [`Entities::check_within`]'s question, since an edit may set entities
/// over a text the caller does not send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entities(Vec<MessageEntity>);

impl Entities {
    pub fn parse(field: &str, entities: Vec<MessageEntity>) -> Result<Self> {
        if entities.len() > MAX_LIST_ITEMS {
            return Err(Error::invalid(
                field,
                format!(
                    "{} entities, at most {MAX_LIST_ITEMS} allowed",
                    entities.len()
                ),
            ));
        }
        for (i, entity) in entities.iter().enumerate() {
            match &entity.entity {
                None => {
                    return Err(Error::invalid(
                        &format!("{field}[{i}]"),
                        "no entity kind set",
                    ))
                }
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
                Some(_) => {}
            }
        }
        Ok(Self(entities))
    }

    /// Every entity non-empty and inside `text`.
    pub fn check_within(&self, field: &str, text: &str) -> Result<()> {
        let units = text.encode_utf16().count() as u64;
        for (i, entity) in self.0.iter().enumerate() {
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
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[MessageEntity] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<MessageEntity> {
        self.0
    }
}

/// A text of at most [`MAX_TEXT_CHARS`] characters with entities inside it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageText {
    text: String,
    entities: Entities,
}

impl MessageText {
    /// `field` names the text and `entities_field` its entities.
    pub fn parse(
        field: &str,
        text: String,
        entities_field: &str,
        entities: Vec<MessageEntity>,
    ) -> Result<Self> {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(Error::invalid(
                field,
                format!("{chars} characters, at most {MAX_TEXT_CHARS} allowed"),
            ));
        }
        let entities = Entities::parse(entities_field, entities)?;
        entities.check_within(entities_field, &text)?;
        Ok(Self { text, entities })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn entities(&self) -> &[MessageEntity] {
        self.entities.as_slice()
    }

    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    pub fn into_parts(self) -> (String, Vec<MessageEntity>) {
        (self.text, self.entities.into_vec())
    }
}

/// A conversation's draft: `None` clears it (an empty draft does too), and a
/// draft is bounded like a message's text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft(Option<String>);

impl Draft {
    pub fn parse(field: &str, draft: Option<String>) -> Result<Self> {
        let draft = draft.filter(|d| !d.is_empty());
        if let Some(d) = &draft {
            let chars = d.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(Error::invalid(
                    field,
                    format!("{chars} characters, at most {MAX_TEXT_CHARS} allowed"),
                ));
            }
        }
        Ok(Self(draft))
    }

    pub fn into_option(self) -> Option<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bold(start: u32, length: u32) -> MessageEntity {
        MessageEntity {
            start_index: start,
            length,
            entity: Some(Entity::Bold(true)),
        }
    }

    #[test]
    fn entity_offsets_count_utf16_units() {
        // "😀" is two UTF-16 units, so "😀ab" has four.
        let text = || "😀ab".to_owned();
        assert!(MessageText::parse("message", text(), "entities", vec![bold(0, 4)]).is_ok());
        assert!(MessageText::parse("message", text(), "entities", vec![bold(1, 4)]).is_err());
    }

    #[test]
    fn too_long_text_is_refused_naming_the_field() {
        let text = "x".repeat(MAX_TEXT_CHARS + 1);
        let error = MessageText::parse("message", text, "entities", vec![]).unwrap_err();
        assert!(error.to_string().starts_with("message:"), "{error}");
    }

    #[test]
    fn an_entity_without_a_kind_is_refused() {
        let mut entity = bold(0, 1);
        entity.entity = None;
        let error = Entities::parse("entities", vec![entity]).unwrap_err();
        assert!(error.to_string().starts_with("entities[0]"), "{error}");
    }
}
