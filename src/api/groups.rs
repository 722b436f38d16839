//! Group and invite calls of `ChatService`.

use std::collections::HashSet;

use tonic::Request;

use super::parse::{self, group};
use super::{handle, Reply};
use crate::domain::groups::{GroupEdit, NewGroup};
use crate::domain::invites::NewInvite;
use crate::domain::limits::MAX_NAME_BYTES;
use crate::domain::values::{GroupName, InviteCode};
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::model::{ChatId, MessageId, UserId};
use crate::proto::{auth, chats, types};

pub async fn create_chat(core: &Core, request: Request<chats::CreateChat>) -> Reply<types::Group> {
    handle(request, |user, r| async move {
        let group = new_group(r, user)?;
        core.groups().create(user, group).await
    })
    .await
}

pub async fn edit_chat(core: &Core, request: Request<chats::EditChat>) -> Reply<chats::Chat> {
    handle(request, |user, r| async move {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        core.groups().edit(user, id, group_edit(r)?).await
    })
    .await
}

pub async fn add_chat_member(core: &Core, request: Request<chats::AddChatMember>) -> Reply<()> {
    handle(request, |user, r| async move {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        let member = parse::user_id("user_id", r.user_id)?;
        core.groups().add_member(user, id, member).await
    })
    .await
}

pub async fn remove_chat_member(
    core: &Core,
    request: Request<chats::RemoveChatMember>,
) -> Reply<()> {
    handle(request, |user, r| async move {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        let member = parse::user_id("user_id", r.user_id)?;
        core.groups().remove_member(user, id, member).await
    })
    .await
}

pub async fn create_chat_invite(
    core: &Core,
    request: Request<chats::CreateChatInvite>,
) -> Reply<auth::CreatedInvite> {
    handle(request, |user, r| async move {
        let invite = new_invite(r, user)?;
        let code = core.invites().create(user, invite).await?;
        Ok(auth::CreatedInvite { code })
    })
    .await
}

pub async fn list_chat_invites(
    core: &Core,
    request: Request<chats::ListChatInvites>,
) -> Reply<auth::InviteList> {
    handle(request, |user, r| async move {
        let chat = group("chat_ref", r.chat_ref.as_ref(), user)?;
        core.invites().list(user, chat).await
    })
    .await
}

pub async fn delete_chat_invite(
    core: &Core,
    request: Request<chats::DeleteChatInvite>,
) -> Reply<()> {
    handle(request, |user, r| async move {
        core.invites()
            .delete(user, &InviteCode::parse("code", &r.code)?)
            .await
    })
    .await
}

pub async fn lookup_invite(
    core: &Core,
    request: Request<auth::LookupInvite>,
) -> Reply<auth::InvitePreview> {
    handle(request, |user, r| async move {
        core.invites()
            .lookup(user, &InviteCode::parse("code", &r.code)?)
            .await
    })
    .await
}

pub async fn use_invite(core: &Core, request: Request<auth::UseInvite>) -> Reply<()> {
    handle(request, |user, r| async move {
        core.invites()
            .redeem(user, &InviteCode::parse("code", &r.code)?)
            .await
    })
    .await
}

/// `CreateChat` into a new group: a name and the other members, each listed
/// once and not the creator (how many may join is the domain's rule).
pub(super) fn new_group(r: chats::CreateChat, creator: UserId) -> Result<NewGroup> {
    let name = GroupName::parse("name", &r.name)?;
    let mut seen = HashSet::new();
    let mut users = Vec::with_capacity(r.users.len());
    for (i, listed) in r.users.iter().enumerate() {
        let field = format!("users[{i}].user_id");
        let id = parse::user_id(&field, listed.user_id)?;
        if id == creator {
            return Err(Error::invalid(&field, "is the creator, who joins anyway"));
        }
        if !seen.insert(id) {
            return Err(Error::invalid(&field, "listed twice"));
        }
        users.push(id);
    }
    Ok(NewGroup { name, users })
}

/// `EditChat`'s optional fields into a group edit.
pub(super) fn group_edit(r: chats::EditChat) -> Result<GroupEdit> {
    Ok(GroupEdit {
        name: r
            .name
            .as_deref()
            .map(|n| GroupName::parse("name", n))
            .transpose()?,
        highlighted: r.highlighted_msg_id.map(|h| match h.highlighted_msg_id {
            None | Some(0) => None,
            Some(id) => Some(MessageId(id)),
        }),
        photo: match r.photo {
            None => None,
            Some(photo) => Some(match photo.file {
                None => None,
                Some(file) => {
                    // Not stored, but bounded like every name a request carries.
                    parse::short("photo.file.name", file.name.as_bytes(), MAX_NAME_BYTES)?;
                    Some(types::ChatPhoto {
                        file_id: parse::nonzero("photo.file.id", file.id)?,
                        // EditChat carries no preview: the group's photo has none.
                        preview: Vec::new(),
                    })
                }
            }),
        },
    })
}

/// `CreateChatInvite` into a new invite to a group.
pub(super) fn new_invite(r: chats::CreateChatInvite, caller: UserId) -> Result<NewInvite> {
    let chat: ChatId = group("chat_ref", r.chat_ref.as_ref(), caller)
        .map_err(|_| Error::invalid("chat_ref", "invites are for groups only"))?;
    if r.max_uses == Some(0) {
        return Err(Error::invalid("max_uses", "must be at least 1"));
    }
    Ok(NewInvite {
        chat,
        expires_at: r.expires_at,
        max_uses: r.max_uses,
    })
}
