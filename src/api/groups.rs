//! Group and invite calls of `ChatService`.

use std::collections::HashSet;

use tonic::{Request, Response, Status};

use super::parse::{self, group};
use super::{caller, respond};
use crate::domain::groups::{GroupEdit, NewGroup};
use crate::domain::invites::NewInvite;
use crate::domain::limits::MAX_NAME_BYTES;
use crate::domain::Core;
use crate::error::Error;
use crate::model::{MessageId, UserId};
use crate::proto::{auth, chats, types};

type Reply<T> = Result<Response<T>, Status>;

pub async fn create_chat(core: &Core, request: Request<chats::CreateChat>) -> Reply<types::Group> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let name = parse::group_name("name", &r.name)?;
        if r.users.len() >= core.limits.max_group_members {
            return Err(Error::invalid(
                "users",
                format!(
                    "{} users plus the creator, at most {} participants allowed",
                    r.users.len(),
                    core.limits.max_group_members
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut users = Vec::with_capacity(r.users.len());
        for (i, listed) in r.users.iter().enumerate() {
            let field = format!("users[{i}].user_id");
            let id = parse::user_id(&field, listed.user_id)?;
            if id == user {
                return Err(Error::invalid(&field, "is the creator, who joins anyway"));
            }
            if !seen.insert(id) {
                return Err(Error::invalid(&field, "listed twice"));
            }
            users.push(id);
        }
        core.create_group(user, NewGroup { name, users }).await
    };
    respond(result.await)
}

pub async fn edit_chat(core: &Core, request: Request<chats::EditChat>) -> Reply<chats::Chat> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        let edit = GroupEdit {
            name: r
                .name
                .as_deref()
                .map(|n| parse::group_name("name", n))
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
        };
        core.edit_group(user, id, edit).await
    };
    respond(result.await)
}

pub async fn add_chat_member(core: &Core, request: Request<chats::AddChatMember>) -> Reply<()> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        let member = parse::user_id("user_id", r.user_id)?;
        core.add_member(user, id, member).await
    };
    respond(result.await)
}

pub async fn remove_chat_member(
    core: &Core,
    request: Request<chats::RemoveChatMember>,
) -> Reply<()> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let id = group("chat_ref", r.chat_ref.as_ref(), user)?;
        let member: UserId = parse::user_id("user_id", r.user_id)?;
        core.remove_member(user, id, member).await
    };
    respond(result.await)
}

pub async fn create_chat_invite(
    core: &Core,
    request: Request<chats::CreateChatInvite>,
) -> Reply<auth::CreatedInvite> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let chat = group("chat_ref", r.chat_ref.as_ref(), user)
            .map_err(|_| Error::invalid("chat_ref", "invites are for groups only"))?;
        if r.max_uses == Some(0) {
            return Err(Error::invalid("max_uses", "must be at least 1"));
        }
        let invite = NewInvite {
            chat,
            expires_at: r.expires_at,
            max_uses: r.max_uses,
        };
        let code = core.create_invite(user, invite).await?;
        Ok(auth::CreatedInvite { code })
    };
    respond(result.await)
}

pub async fn list_chat_invites(
    core: &Core,
    request: Request<chats::ListChatInvites>,
) -> Reply<auth::InviteList> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async {
        let chat = group("chat_ref", r.chat_ref.as_ref(), user)?;
        core.list_invites(user, chat).await
    };
    respond(result.await)
}

pub async fn delete_chat_invite(
    core: &Core,
    request: Request<chats::DeleteChatInvite>,
) -> Reply<()> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async { core.delete_invite(user, parse::invite_code(&r.code)?).await };
    respond(result.await)
}

pub async fn lookup_invite(
    core: &Core,
    request: Request<auth::LookupInvite>,
) -> Reply<auth::InvitePreview> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async { core.lookup_invite(user, parse::invite_code(&r.code)?).await };
    respond(result.await)
}

pub async fn use_invite(core: &Core, request: Request<auth::UseInvite>) -> Reply<()> {
    let user = caller(&request)?;
    let r = request.into_inner();
    let result = async { core.use_invite(user, parse::invite_code(&r.code)?).await };
    respond(result.await)
}
