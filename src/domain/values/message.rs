//! A message as a request describes it: what SendMessage would store, and
//! what EditMessage would change.

use super::{Entities, MessageText};
use crate::domain::target::ChatTarget;
use crate::domain::text;
use crate::error::{Error, Result};
use crate::model::{MessageId, UserId};
use crate::proto::{media, types};

/// A SendMessage whose parts are each within bounds and whose whole, as it
/// would be stored, is within [`crate::domain::limits::MAX_MESSAGE_BYTES`].
#[derive(Clone, Debug)]
pub struct NewMessage {
    target: ChatTarget,
    text: MessageText,
    media: Vec<media::MessageMedia>,
    reply: Option<Reply>,
    cloak: Option<types::message::message_bot_info::MessageCloak>,
    client_id: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub message_id: MessageId,
    pub quote: Option<types::message::message_reply_info::Quote>,
}

impl NewMessage {
    /// Refuses a message with neither text nor media, or one too large as a
    /// whole even though each part is within its own bound.
    pub fn new(
        target: ChatTarget,
        text: MessageText,
        media: Vec<media::MessageMedia>,
        reply: Option<Reply>,
        cloak: Option<types::message::message_bot_info::MessageCloak>,
        client_id: Option<u64>,
    ) -> Result<Self> {
        if text.is_blank() && media.is_empty() {
            return Err(Error::invalid("message", "empty: send text or media"));
        }
        let new = Self {
            target,
            text,
            media,
            reply,
            cloak,
            client_id,
        };
        text::message_size("message", &new.clone().into_body(UserId(0)))?;
        Ok(new)
    }

    pub fn target(&self) -> ChatTarget {
        self.target
    }

    pub fn text(&self) -> &MessageText {
        &self.text
    }

    pub fn reply_to(&self) -> Option<MessageId> {
        self.reply.as_ref().map(|r| r.message_id)
    }

    pub fn is_cloaked(&self) -> bool {
        self.cloak.is_some()
    }

    pub fn client_id(&self) -> Option<u64> {
        self.client_id
    }

    /// The message as stored, before the store gives it its id.
    pub fn into_body(self, author: UserId) -> types::Message {
        let (message, entities) = self.text.into_parts();
        // `reply_to` is deprecated but still filled in for clients that read only it.
        #[allow(deprecated)]
        types::Message {
            chat_ref: None,
            message_id: 0,
            author_id: author.get(),
            message,
            reply_to: self.reply.as_ref().map(|r| r.message_id.get()),
            media: self.media,
            entities,
            edited_at: None,
            r#type: None,
            forward: None,
            reply: self.reply.map(|r| types::message::MessageReplyInfo {
                message_id: Some(r.message_id.get()),
                quote: r.quote,
            }),
            bot_info: self
                .cloak
                .map(|c| types::message::MessageBotInfo { cloak: Some(c) }),
        }
    }
}

/// An EditMessage: what it changes, each part within bounds.
#[derive(Clone, Debug)]
pub struct MessageEdit {
    pub target: ChatTarget,
    pub message_id: MessageId,
    pub text: TextEdit,
    pub remove_media: bool,
    /// Replaces the media when not empty.
    pub media: Vec<media::MessageMedia>,
}

/// What an edit does to the text.
#[derive(Clone, Debug)]
pub enum TextEdit {
    Keep,
    /// New text with its entities (none clears them).
    Text(MessageText),
    /// New entities over the text as stored, which they must lie inside.
    Entities(Entities),
}
