//! Starts a real server per test (port 0, its own state) and hands out
//! authenticated clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use osmium_chat::config::{Secret, Settings};
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::{SubscribeRequest, UpdateEnvelope, UpsertUsers};
use osmium_chat::proto::{chats, messages, refs, types};
use osmium_chat::startup::Application;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

pub use crate::support::metrics::{sample, scrape};
use crate::support::postgres::fresh_schema_url;
use crate::support::redis::RedisServer;

pub const SECRET: &str = "test-secret-of-thirty-two-bytes-or-more";
pub const AUDIENCE: &str = "osmium-chat";

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    /// The embedded store and the in-process bus.
    Memory,
    /// Postgres and the in-process bus.
    Postgres,
    /// Postgres and Redis: what several replicas run on.
    PostgresRedis,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Client = ChatServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    pub port: u16,
    pub metrics_port: u16,
    /// The plaintext health endpoint, when configured.
    pub health_port: Option<u16>,
    /// The Redis this app uses, when it owns one.
    pub redis: Option<RedisServer>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// A user known to the service, with a client that acts as them.
pub struct TestUser {
    pub id: u64,
    pub client: Client,
}

static NEXT_USER: AtomicU64 = AtomicU64::new(1_000);

pub fn next_user_id() -> u64 {
    NEXT_USER.fetch_add(1, Ordering::Relaxed)
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_tuned(engine, |_| {}).await
    }

    /// A fresh app on `engine`, with settings adjusted by `tune`.
    pub async fn spawn_tuned(engine: Engine, tune: impl FnOnce(&mut Settings)) -> Self {
        let redis = match engine {
            Engine::PostgresRedis => Some(RedisServer::start().await),
            _ => None,
        };
        let mut settings = Self::settings(engine).await;
        if let Some(redis) = &redis {
            settings.redis_url = Some(Secret::new(redis.url()));
        }
        tune(&mut settings);
        let mut app = Self::spawn_with(settings).await;
        app.redis = redis;
        app
    }

    /// Settings for `engine`; a Redis URL is the caller's to add.
    pub async fn settings(engine: Engine) -> Settings {
        let database_url = match engine {
            Engine::Memory => None,
            Engine::Postgres | Engine::PostgresRedis => Some(Secret::new(fresh_schema_url().await)),
        };
        Settings {
            database_url,
            jwt_secret: Some(Secret::new(SECRET)),
            ..Settings::default()
        }
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        let app = Application::build(settings)
            .await
            .expect("the application builds");
        let port = app.port();
        let metrics_port = app.metrics_port();
        let health_port = app.health_port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        });
        Self {
            port,
            metrics_port,
            health_port,
            redis: None,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Starts the graceful stop without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server task ends cleanly");
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .expect("a valid uri")
            .connect()
            .await
            .expect("the server accepts connections")
    }

    pub fn token(&self, user: u64, name: Option<&str>, service: bool) -> String {
        osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, name, service, 3600)
            .expect("signs")
    }

    pub async fn client_with_token(&self, token: &str) -> Client {
        let value = format!("Bearer {token}").parse().expect("ascii header");
        ChatServiceClient::with_interceptor(self.channel().await, Bearer(value))
    }

    pub async fn client(&self, user: u64) -> Client {
        self.client_with_token(&self.token(user, None, false)).await
    }

    pub async fn directory(&self) -> UserDirectoryClient<InterceptedService<Channel, Bearer>> {
        let value = format!("Bearer {}", self.token(1, None, true))
            .parse()
            .expect("ascii header");
        UserDirectoryClient::with_interceptor(self.channel().await, Bearer(value))
    }

    /// Registers a user through UserDirectory and returns a client acting as them.
    pub async fn user(&self, name: &str) -> TestUser {
        self.user_with(name, None).await
    }

    pub async fn user_with(&self, name: &str, username: Option<&str>) -> TestUser {
        let id = next_user_id();
        self.directory()
            .await
            .upsert_users(UpsertUsers {
                users: vec![types::User {
                    id,
                    name: name.into(),
                    username: username.map(Into::into),
                    ..Default::default()
                }],
            })
            .await
            .expect("users are upserted");
        TestUser {
            id,
            client: self.client(id).await,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn dm(user: u64) -> Option<refs::ChatRef> {
    Some(refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::User(refs::UserRef { user_id: user })),
    })
}

pub fn saved() -> Option<refs::ChatRef> {
    Some(refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::Self_(refs::RefSelf {})),
    })
}

impl TestUser {
    pub async fn send(&mut self, to: Option<refs::ChatRef>, text: &str) -> u64 {
        self.client
            .send_message(messages::SendMessage {
                chat_ref: to,
                message: text.into(),
                ..Default::default()
            })
            .await
            .expect("the message is sent")
            .into_inner()
            .message_id
    }

    pub async fn conversation(&mut self, chat: Option<refs::ChatRef>) -> types::Conversation {
        self.client
            .get_chat(chats::GetChat { chat_ref: chat })
            .await
            .expect("the chat opens")
            .into_inner()
            .chat
            .expect("a conversation")
    }

    /// GetChats: each conversation's `last_message_id` and the id of the
    /// last message sent with it, in the order given.
    pub async fn chat_list(&mut self) -> Vec<(u64, Option<u64>)> {
        let page = self
            .client
            .get_chats(chats::GetChats::default())
            .await
            .expect("the chats load")
            .into_inner();
        page.chats
            .iter()
            .map(|conversation| {
                let last = page
                    .messages
                    .iter()
                    .find(|m| m.chat_ref == conversation.chat_ref)
                    .map(|m| m.message_id);
                (conversation.last_message_id, last)
            })
            .collect()
    }

    pub async fn history(
        &mut self,
        chat: Option<refs::ChatRef>,
        limit: Option<u32>,
        offset: Option<messages::get_history::Offset>,
    ) -> Vec<u64> {
        self.client
            .get_history(messages::GetHistory {
                chat_ref: chat,
                limit,
                offset,
            })
            .await
            .expect("history loads")
            .into_inner()
            .messages
            .iter()
            .map(|m| m.message_id)
            .collect()
    }

    pub async fn subscribe(&mut self, since: Option<u64>) -> Streaming<UpdateEnvelope> {
        self.client
            .subscribe(SubscribeRequest { since_seq: since })
            .await
            .expect("subscribed")
            .into_inner()
    }
}

/// The next envelope; a bound only so that a broken server fails the test
/// instead of hanging it.
pub async fn next(stream: &mut Streaming<UpdateEnvelope>) -> UpdateEnvelope {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update arrives")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, mentions: &str) {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(mentions),
                "{:?} should mention {mentions:?}",
                status.message()
            );
        }
    }
}

/// The answer to anyone outside a chat, whether or not it exists.
pub fn assert_hidden<T: std::fmt::Debug>(result: Result<T, Status>) {
    assert_code(result, Code::NotFound, "chat not found");
}

/// Generates one test per engine set (memory; Postgres; Postgres with
/// Redis) for each listed scenario `async fn(TestApp)`.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::TestApp::spawn(crate::helpers::Engine::Memory).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::TestApp::spawn(crate::helpers::Engine::Postgres).await).await;
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::TestApp::spawn(crate::helpers::Engine::PostgresRedis).await).await;
                }
            )*
        }
    };
}
pub(crate) use both_engines;

/// Like `both_engines!`, for scenarios that build their own server from an [`Engine`].
macro_rules! both_engines_custom {
    ($($name:ident),* $(,)?) => {
        mod memory_custom {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::Engine::Memory).await;
                }
            )*
        }
        mod postgres_custom {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::Engine::Postgres).await;
                }
            )*
        }
        mod postgres_redis_custom {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::Engine::PostgresRedis).await;
                }
            )*
        }
    };
}
pub(crate) use both_engines_custom;

pub fn group(id: u64) -> Option<refs::ChatRef> {
    Some(refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::Group(refs::GroupRef { group_id: id })),
    })
}

impl TestUser {
    /// Creates a group of the caller and `others`; returns its id.
    pub async fn create_group(&mut self, name: &str, others: &[u64]) -> u64 {
        self.client
            .create_chat(chats::CreateChat {
                users: others
                    .iter()
                    .map(|id| refs::UserRef { user_id: *id })
                    .collect(),
                name: name.into(),
            })
            .await
            .expect("the group is created")
            .into_inner()
            .id
    }
}
