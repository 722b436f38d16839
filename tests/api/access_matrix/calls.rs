//! The calls of the authorization matrix, one per method, and the group
//! they act on.

use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::{SetDraft, SubscribeRequest, UpsertUsers};
use osmium_chat::proto::settings::change_notification_preferences::Scope;
use osmium_chat::proto::{auth, chats, messages, refs, settings, types};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::Status;

use super::{token, Row, Service};
use crate::helpers::{group, next_user_id, TestApp};

/// A group of `owner`, `member` and `other`, with what the calls act on.
pub(super) struct Fixture {
    pub owner: u64,
    pub member: u64,
    pub other: u64,
    pub outsider: u64,
    /// Registered, in no group: the one calls add.
    pub spare: u64,
    pub group: u64,
    pub owner_message: u64,
    pub owner_invite: String,
}

/// Adds `authorization` when there is a token.
#[derive(Clone)]
struct MaybeBearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for MaybeBearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub(super) async fn call(
    channel: &Channel,
    token: Option<&str>,
    row: &Row,
    fx: &Fixture,
) -> Result<(), Status> {
    let auth = MaybeBearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii")));
    if row.service == Service::Directory {
        let mut directory = UserDirectoryClient::with_interceptor(channel.clone(), auth);
        return match row.method {
            "UpsertUsers" => directory.upsert_users(upsert(fx.spare)).await.map(drop),
            other => panic!("the matrix has no call for UserDirectory/{other}"),
        };
    }
    let mut chat = ChatServiceClient::with_interceptor(channel.clone(), auth);
    let g = group(fx.group);
    let code = fx.owner_invite.clone();
    match row.method {
        "GetChats" => chat.get_chats(chats::GetChats::default()).await.map(drop),
        "GetChat" => chat
            .get_chat(chats::GetChat { chat_ref: g })
            .await
            .map(drop),
        "CreateChat" => chat
            .create_chat(chats::CreateChat {
                users: vec![refs::UserRef { user_id: fx.spare }],
                name: "Matrix".into(),
            })
            .await
            .map(drop),
        "EditChat" => chat
            .edit_chat(chats::EditChat {
                chat_ref: g,
                name: Some("Renamed".into()),
                ..Default::default()
            })
            .await
            .map(drop),
        "AddChatMember" => chat
            .add_chat_member(chats::AddChatMember {
                chat_ref: g,
                user_id: fx.spare,
            })
            .await
            .map(drop),
        "RemoveChatMember" => chat
            .remove_chat_member(chats::RemoveChatMember {
                chat_ref: g,
                user_id: fx.other,
            })
            .await
            .map(drop),
        "CreateChatInvite" => chat
            .create_chat_invite(chats::CreateChatInvite {
                chat_ref: g,
                ..Default::default()
            })
            .await
            .map(drop),
        "ListChatInvites" => chat
            .list_chat_invites(chats::ListChatInvites { chat_ref: g })
            .await
            .map(drop),
        "DeleteChatInvite" => chat
            .delete_chat_invite(chats::DeleteChatInvite { code })
            .await
            .map(drop),
        "LookupInvite" => chat
            .lookup_invite(auth::LookupInvite { code })
            .await
            .map(drop),
        "UseInvite" => chat.use_invite(auth::UseInvite { code }).await.map(drop),
        "MarkChatRead" => chat
            .mark_chat_read(chats::MarkChatRead {
                chat_ref: g,
                message_id: fx.owner_message,
                read_amount: None,
            })
            .await
            .map(drop),
        "SetTyping" => chat
            .set_typing(chats::SetTyping {
                chat_ref: g,
                typing: true,
                action: None,
            })
            .await
            .map(drop),
        "SetDraft" => chat
            .set_draft(SetDraft {
                chat_ref: g,
                draft: Some("draft".into()),
            })
            .await
            .map(drop),
        "ChangeNotificationPreferences" => chat
            .change_notification_preferences(settings::ChangeNotificationPreferences {
                prefs: types::NotifPrefs::Mentions as i32,
                scope: g.map(Scope::ChatRef),
            })
            .await
            .map(drop),
        "SendMessage" => chat
            .send_message(messages::SendMessage {
                chat_ref: g,
                message: "hello".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        "GetHistory" => chat
            .get_history(messages::GetHistory {
                chat_ref: g,
                ..Default::default()
            })
            .await
            .map(drop),
        "EditMessage" => chat
            .edit_message(messages::EditMessage {
                chat_ref: g,
                message_id: fx.owner_message,
                message: Some("edited".into()),
                ..Default::default()
            })
            .await
            .map(drop),
        "DeleteMessage" => chat
            .delete_message(messages::DeleteMessage {
                chat_ref: g,
                message_ids: vec![fx.owner_message],
            })
            .await
            .map(drop),
        "Subscribe" => chat
            .subscribe(SubscribeRequest { since_seq: None })
            .await
            .map(drop),
        other => panic!("the matrix has no call for ChatService/{other}"),
    }
}

fn upsert(id: u64) -> UpsertUsers {
    UpsertUsers {
        users: vec![types::User {
            id,
            name: format!("User {id}"),
            ..Default::default()
        }],
    }
}

pub(super) async fn fixture(app: &TestApp, channel: &Channel) -> Fixture {
    let [owner, member, other, outsider, spare] = [(); 5].map(|_| next_user_id());
    let service = MaybeBearer(Some(
        format!("Bearer {}", token(1, true)).parse().expect("ascii"),
    ));
    let mut directory = UserDirectoryClient::with_interceptor(channel.clone(), service);
    for id in [owner, member, other, outsider, spare] {
        directory
            .upsert_users(upsert(id))
            .await
            .expect("registered");
    }
    let mut client = app.client_with_token(&token(owner, false)).await;
    let group_id = client
        .create_chat(chats::CreateChat {
            users: [member, other]
                .map(|user_id| refs::UserRef { user_id })
                .to_vec(),
            name: "Matrix".into(),
        })
        .await
        .expect("the group is created")
        .into_inner()
        .id;
    let owner_message = client
        .send_message(messages::SendMessage {
            chat_ref: group(group_id),
            message: "the owner's".into(),
            ..Default::default()
        })
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    let owner_invite = client
        .create_chat_invite(chats::CreateChatInvite {
            chat_ref: group(group_id),
            ..Default::default()
        })
        .await
        .expect("an invite")
        .into_inner()
        .code;
    Fixture {
        owner,
        member,
        other,
        outsider,
        spare,
        group: group_id,
        owner_message,
        owner_invite,
    }
}
