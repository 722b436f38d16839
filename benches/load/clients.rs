//! gRPC clients of the replicas: bearer tokens, chat refs, a send with its
//! own client id, and recognising a created message on a stream.

use std::sync::atomic::{AtomicU64, Ordering};

use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::UpdateEnvelope;
use osmium_chat::proto::{messages, refs, updates};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

use crate::{Result, AUDIENCE, SECRET};

#[derive(Clone)]
pub(crate) struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub(crate) type Client = ChatServiceClient<InterceptedService<Channel, Bearer>>;
pub(crate) type Directory = UserDirectoryClient<InterceptedService<Channel, Bearer>>;

pub(crate) fn bearer(user: u64, service: bool) -> Result<Bearer> {
    Ok(Bearer(authorization(user, service)?.parse()?))
}

/// The `authorization` header value of `user`'s calls.
pub(crate) fn authorization(user: u64, service: bool) -> Result<String> {
    let token =
        osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, None, service, 6 * 3600)?;
    Ok(format!("Bearer {token}"))
}

pub(crate) fn group_ref(group_id: u64) -> refs::ChatRef {
    refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::Group(refs::GroupRef { group_id })),
    }
}

/// Unique across the run: every send carries its own client id.
pub(crate) static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn send_text(
    client: &mut Client,
    chat: &refs::ChatRef,
    text: &str,
) -> Result<u64, Status> {
    let request = messages::SendMessage {
        chat_ref: Some(*chat),
        message: text.into(),
        client_id: Some(CLIENT_IDS.fetch_add(1, Ordering::Relaxed)),
        ..Default::default()
    };
    Ok(client.send_message(request).await?.into_inner().message_id)
}

/// The message id of an `UpdateMessageCreated` in `group_id`, if that is what it is.
pub(crate) fn created_in(envelope: &UpdateEnvelope, group_id: u64) -> Option<u64> {
    let Some(updates::update::Update::MessageCreated(created)) =
        envelope.update.as_ref()?.update.as_ref()
    else {
        return None;
    };
    let message = created.message.as_ref()?;
    match message.chat_ref.as_ref()?.r#ref.as_ref()? {
        refs::chat_ref::Ref::Group(g) if g.group_id == group_id => Some(message.message_id),
        _ => None,
    }
}
