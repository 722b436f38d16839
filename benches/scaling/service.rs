//! The service under test, in-process: an app on one schema with its gRPC
//! clients, and the calls each claim measures.

use osmium_chat::config::{LimitSettings, Secret, Settings};
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::{chats, messages, refs, types};
use osmium_chat::startup::Application;
use tokio::sync::oneshot;
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

pub(crate) struct App {
    pub(crate) port: u16,
    /// Dropping it stops the server.
    pub(crate) _stop: oneshot::Sender<()>,
}

impl App {
    pub(crate) async fn start(database_url: Option<String>) -> Result<Self> {
        let settings = Settings {
            database_url: database_url.map(Secret::new),
            jwt_secret: Some(Secret::new(SECRET)),
            // Capacity is measured, not the per-user limits.
            limits: LimitSettings::without_rates(),
            ..Settings::default()
        };
        let app = Application::build(settings).await?;
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(Self { port, _stop: stop })
    }

    pub(crate) async fn channel(&self) -> Result<Channel> {
        Ok(
            Channel::from_shared(format!("http://127.0.0.1:{}", self.port))?
                .connect()
                .await?,
        )
    }

    pub(crate) fn bearer(user: u64, service: bool) -> Result<Bearer> {
        let token =
            osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, None, service, 3600)?;
        Ok(Bearer(format!("Bearer {token}").parse()?))
    }

    pub(crate) async fn client(&self, user: u64) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            self.channel().await?,
            Self::bearer(user, false)?,
        ))
    }

    pub(crate) async fn upsert_users(&self, ids: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut directory =
            UserDirectoryClient::with_interceptor(self.channel().await?, Self::bearer(1, true)?);
        let users = ids
            .into_iter()
            .map(|id| types::User {
                id,
                name: format!("user {id}"),
                ..Default::default()
            })
            .collect();
        directory.upsert_users(UpsertUsers { users }).await?;
        Ok(())
    }
}

pub(crate) fn dm(user_id: u64) -> Option<refs::ChatRef> {
    Some(refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::User(refs::UserRef { user_id })),
    })
}

pub(crate) async fn send(client: &mut Client, to: u64, text: &str) -> Result<u64> {
    Ok(client
        .send_message(messages::SendMessage {
            chat_ref: dm(to),
            message: text.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .message_id)
}

pub(crate) async fn get_chats(client: &mut Client, limit: u32) -> Result<chats::Chats> {
    Ok(client
        .get_chats(chats::GetChats {
            limit: Some(limit),
            ..Default::default()
        })
        .await?
        .into_inner())
}

pub(crate) async fn latest_history(client: &mut Client, peer: u64) -> Result<messages::Messages> {
    Ok(client
        .get_history(messages::GetHistory {
            chat_ref: dm(peer),
            limit: Some(50),
            offset: None,
        })
        .await?
        .into_inner())
}

pub(crate) async fn get_chat(client: &mut Client, peer: u64) -> Result<chats::Chat> {
    Ok(client
        .get_chat(chats::GetChat { chat_ref: dm(peer) })
        .await?
        .into_inner())
}

// The measured gRPC calls. Each takes its own clone of a client (a channel
// handle): the same small cost on every side of a ratio.

pub(crate) async fn get_chats_call(mut client: Client) -> Result<()> {
    std::hint::black_box(get_chats(&mut client, 20).await?);
    Ok(())
}

pub(crate) async fn history_call(mut client: Client, peer: u64) -> Result<()> {
    std::hint::black_box(latest_history(&mut client, peer).await?);
    Ok(())
}

pub(crate) async fn get_chat_call(mut client: Client, peer: u64) -> Result<()> {
    std::hint::black_box(get_chat(&mut client, peer).await?);
    Ok(())
}
