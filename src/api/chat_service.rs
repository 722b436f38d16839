//! `osmium.chat.v1.ChatService`.

use tonic::Request;

use super::parse::{self, target};
use super::{handle, ChatApi, Reply as Reply_};
use crate::domain::messages::Anchor;
use crate::domain::target::ChatTarget;
use crate::domain::values::{
    ChatWindow, CloakName, Draft, Entities, MessageEdit, MessageText, NewMessage, Page, Reply,
    TextEdit,
};
use crate::error::{Error, Result};
use crate::model::MessageId;
use crate::proto::service::chat_service_server::ChatService;
use crate::proto::service::{SetDraft, SubscribeRequest};
use crate::proto::{auth, chats, messages, settings, types};

#[tonic::async_trait]
impl ChatService for ChatApi {
    async fn get_chats(&self, request: Request<chats::GetChats>) -> Reply_<chats::Chats> {
        handle(request, |user, r| async move {
            // No id is 0, so a 0 bound is read as no bound rather than "nothing".
            let window = ChatWindow {
                before: r.max_id.filter(|id| *id != 0),
                after: r.min_id,
                page: Page::parse(r.limit),
            };
            self.core.chats().list(user, window).await
        })
        .await
    }

    async fn get_chat(&self, request: Request<chats::GetChat>) -> Reply_<chats::Chat> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            self.core.chats().get(user, chat).await
        })
        .await
    }

    async fn create_chat(&self, request: Request<chats::CreateChat>) -> Reply_<types::Group> {
        super::groups::create_chat(&self.core, request).await
    }

    async fn edit_chat(&self, request: Request<chats::EditChat>) -> Reply_<chats::Chat> {
        super::groups::edit_chat(&self.core, request).await
    }

    async fn add_chat_member(&self, request: Request<chats::AddChatMember>) -> Reply_<()> {
        super::groups::add_chat_member(&self.core, request).await
    }

    async fn remove_chat_member(&self, request: Request<chats::RemoveChatMember>) -> Reply_<()> {
        super::groups::remove_chat_member(&self.core, request).await
    }

    async fn create_chat_invite(
        &self,
        request: Request<chats::CreateChatInvite>,
    ) -> Reply_<auth::CreatedInvite> {
        super::groups::create_chat_invite(&self.core, request).await
    }

    async fn list_chat_invites(
        &self,
        request: Request<chats::ListChatInvites>,
    ) -> Reply_<auth::InviteList> {
        super::groups::list_chat_invites(&self.core, request).await
    }

    async fn delete_chat_invite(&self, request: Request<chats::DeleteChatInvite>) -> Reply_<()> {
        super::groups::delete_chat_invite(&self.core, request).await
    }

    async fn lookup_invite(
        &self,
        request: Request<auth::LookupInvite>,
    ) -> Reply_<auth::InvitePreview> {
        super::groups::lookup_invite(&self.core, request).await
    }

    async fn use_invite(&self, request: Request<auth::UseInvite>) -> Reply_<()> {
        super::groups::use_invite(&self.core, request).await
    }

    async fn mark_chat_read(&self, request: Request<chats::MarkChatRead>) -> Reply_<()> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let message = parse::message_id("message_id", r.message_id)?;
            self.core.chats().mark_read(user, chat, message).await
        })
        .await
    }

    async fn set_typing(&self, request: Request<chats::SetTyping>) -> Reply_<()> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let action = parse::typing_action("action", r.action)?;
            self.core.typing().set(user, chat, r.typing, action).await
        })
        .await
    }

    async fn set_draft(&self, request: Request<SetDraft>) -> Reply_<()> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let draft = Draft::parse("draft", r.draft)?;
            self.core.chats().set_draft(user, chat, draft).await
        })
        .await
    }

    async fn change_notification_preferences(
        &self,
        request: Request<settings::ChangeNotificationPreferences>,
    ) -> Reply_<()> {
        handle(request, |user, r| async move {
            let prefs = types::NotifPrefs::try_from(r.prefs)
                .map_err(|_| Error::invalid("prefs", format!("unknown value {}", r.prefs)))?;
            let chat = prefs_scope(r.scope.as_ref(), user)?;
            self.core
                .chats()
                .set_notification_prefs(user, chat, prefs)
                .await
        })
        .await
    }

    async fn send_message(
        &self,
        request: Request<messages::SendMessage>,
    ) -> Reply_<messages::SentMessage> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let new = parse_new_message(chat, r)?;
            let id = self.core.messages().send(user, new).await?;
            Ok(messages::SentMessage {
                message_id: id.get(),
            })
        })
        .await
    }

    async fn get_history(
        &self,
        request: Request<messages::GetHistory>,
    ) -> Reply_<messages::Messages> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let anchor = anchor(r.offset)?;
            self.core
                .messages()
                .history(user, chat, anchor, Page::parse(r.limit))
                .await
        })
        .await
    }

    async fn edit_message(&self, request: Request<messages::EditMessage>) -> Reply_<()> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let edit = parse_edit(chat, r)?;
            self.core.messages().edit(user, edit).await
        })
        .await
    }

    async fn delete_message(&self, request: Request<messages::DeleteMessage>) -> Reply_<()> {
        handle(request, |user, r| async move {
            let chat = target("chat_ref", r.chat_ref.as_ref(), user)?;
            let ids = message_ids(&r.message_ids)?;
            self.core.messages().delete(user, chat, ids).await
        })
        .await
    }

    type SubscribeStream = super::subscribe::UpdateStream;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Reply_<Self::SubscribeStream> {
        handle(request, |user, r| {
            super::subscribe::open(self.core.clone(), user, r.since_seq, self.stopping.clone())
        })
        .await
    }
}

/// `ChangeNotificationPreferences.scope`: only a chat is ours to serve.
pub(super) fn prefs_scope(
    scope: Option<&settings::change_notification_preferences::Scope>,
    caller: crate::model::UserId,
) -> Result<ChatTarget> {
    use settings::change_notification_preferences::Scope;
    match scope {
        Some(Scope::ChatRef(chat_ref)) => target("scope.chat_ref", Some(chat_ref), caller),
        Some(Scope::CommunityId(_)) => Err(Error::invalid(
            "scope.community_id",
            "community preferences are served by the communities service",
        )),
        None => Err(Error::invalid("scope", "required: set chat_ref")),
    }
}

/// `GetHistory.offset`: where the page starts.
pub(super) fn anchor(offset: Option<messages::get_history::Offset>) -> Result<Anchor> {
    use messages::get_history::Offset;
    Ok(match offset {
        None => Anchor::Latest,
        Some(Offset::Before(id)) => Anchor::Before(parse::message_id("before", id)?),
        Some(Offset::Since(id)) => Anchor::Since(MessageId(id)),
        Some(Offset::Around(id)) => Anchor::Around(parse::message_id("around", id)?),
    })
}

/// `DeleteMessage.message_ids`: at least one, each nonzero, repeats dropped.
pub(super) fn message_ids(listed: &[u64]) -> Result<Vec<MessageId>> {
    if listed.is_empty() {
        return Err(Error::invalid("message_ids", "required: at least one id"));
    }
    parse::bounded_len("message_ids", listed)?;
    let mut ids = Vec::with_capacity(listed.len());
    for (i, id) in listed.iter().enumerate() {
        let id = parse::message_id(&format!("message_ids[{i}]"), *id)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `EditMessage` into an edit of one message in `chat`.
pub(super) fn parse_edit(chat: ChatTarget, r: messages::EditMessage) -> Result<MessageEdit> {
    let message_id = parse::message_id("message_id", r.message_id)?;
    if r.message.is_none() && r.entities.is_empty() && r.media.is_empty() && !r.remove_media {
        return Err(Error::invalid(
            "message",
            "nothing to change: set message, entities, media or remove_media",
        ));
    }
    let text = match r.message {
        Some(text) => TextEdit::Text(MessageText::parse("message", text, "entities", r.entities)?),
        None if r.entities.is_empty() => TextEdit::Keep,
        None => TextEdit::Entities(Entities::parse("entities", r.entities)?),
    };
    Ok(MessageEdit {
        target: chat,
        message_id,
        text,
        remove_media: r.remove_media,
        media: parse::media("media", r.media)?,
    })
}

// `reply_to_old` is deprecated but older clients still send it.
#[allow(deprecated)]
pub(super) fn parse_new_message(chat: ChatTarget, r: messages::SendMessage) -> Result<NewMessage> {
    let text = MessageText::parse("message", r.message, "entities", r.entities)?;
    let media = parse::media("media", r.media)?;
    let reply = match (r.reply_to, r.reply_to_old) {
        (Some(reply), _) => Some(Reply {
            message_id: parse::message_id("reply_to.message_id", reply.message_id)?,
            quote: reply
                .quote
                .map(|q| parse::quote("reply_to.quote", q))
                .transpose()?,
        }),
        (None, Some(old)) => Some(Reply {
            message_id: parse::message_id("reply_to_old", old)?,
            quote: None,
        }),
        (None, None) => None,
    };
    let cloak = match r.bot_info.and_then(|b| b.cloak) {
        Some(cloak) => Some(types::message::message_bot_info::MessageCloak {
            name: CloakName::parse("bot_info.cloak.name", &cloak.name)?.into_string(),
            photo: cloak.photo_id.map(|file_id| types::ChatPhoto {
                file_id,
                preview: Vec::new(),
            }),
        }),
        None => None,
    };
    NewMessage::new(chat, text, media, reply, cloak, r.client_id)
}
