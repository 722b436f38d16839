//! Builds the application from settings: engines, domain, gRPC services,
//! health and reflection, on a bound listener. `main` and the tests start
//! exactly the same thing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::api::{ChatApi, DirectoryApi};
use crate::auth::{Authenticate, Verifier};
use crate::bus::local::{LocalBus, LocalEphemeral};
use crate::bus::redis::RedisBus;
use crate::bus::{Bus, Ephemeral};
use crate::config::{ConfigError, Settings};
use crate::domain::Core;
use crate::proto::service::chat_service_server::ChatServiceServer;
use crate::proto::service::user_directory_server::UserDirectoryServer;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PostgresStore;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

pub struct Application {
    listener: TcpListener,
    settings: Settings,
    core: Arc<Core>,
    verifier: Arc<Verifier>,
}

/// Opens the configured store, migrating Postgres first.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    match &settings.database_url {
        Some(url) => {
            let store = PostgresStore::connect(url.expose(), settings.db_pool_size)?;
            store.migrate().await?;
            Ok(Arc::new(store))
        }
        None => {
            tracing::warn!("DATABASE_URL is not set: using the embedded memory engine; data lives in memory only and is lost on exit");
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let secret = settings.jwt_secret()?;
        if settings.jwt_secret.is_none() {
            tracing::warn!(
                "OSMIUM_JWT_SECRET is not set: using the development secret (see README)"
            );
        }
        let verifier = Arc::new(Verifier::hs256(
            secret.expose().as_bytes(),
            &settings.jwt_audience,
        ));
        let store = open_store(&settings).await?;
        let (bus, ephemeral): (Arc<dyn Bus>, Arc<dyn Ephemeral>) = match &settings.redis_url {
            Some(url) => {
                let redis = Arc::new(
                    RedisBus::start(url.expose(), &settings.redis_prefix)
                        .map_err(|e| ConfigError(format!("REDIS_URL: {e}")))?,
                );
                (redis.clone(), redis)
            }
            None => (
                Arc::new(LocalBus::default()),
                Arc::new(LocalEphemeral::default()),
            ),
        };
        let worker = store.lease_worker_id().await?;
        let core = Arc::new(Core::new(store, bus, ephemeral, worker, settings.limits()));
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: settings.listen_addr,
                source,
            })?;
        Ok(Self {
            listener,
            settings,
            core,
            verifier,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` resolves, then: health turns NOT_SERVING,
    /// the listener closes, streams end with UNAVAILABLE, and in-flight
    /// calls get the configured drain time to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        reporter.set_serving::<ChatServiceServer<ChatApi>>().await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop, stopping) = watch::channel(false);
        tokio::spawn(prune_periodically(
            self.core.clone(),
            self.settings.update_retention,
            self.settings.prune_interval,
            stopping.clone(),
        ));
        let auth = Authenticate(self.verifier.clone());
        let max_bytes = self.settings.max_request_bytes;
        let chat = ChatServiceServer::new(ChatApi::new(self.core.clone(), stopping.clone()))
            .max_decoding_message_size(max_bytes);
        let directory = UserDirectoryServer::new(DirectoryApi::new(self.core.clone()))
            .max_decoding_message_size(max_bytes);

        let addr = self.local_addr();
        tracing::info!(%addr, engine = self.core.store.engine(), "serving gRPC");
        let signal = {
            let stop = stop.clone();
            async move {
                shutdown.await;
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                reporter
                    .set_not_serving::<ChatServiceServer<ChatApi>>()
                    .await;
                let _ = stop.send(true);
            }
        };
        let serve = Server::builder()
            .trace_fn(|request| {
                tracing::info_span!(
                    "rpc",
                    method = %request.uri().path(),
                    user = tracing::field::Empty,
                    status = tracing::field::Empty,
                )
            })
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(InterceptedService::new(chat, auth.clone()))
            .add_service(InterceptedService::new(directory, auth))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), signal);

        let drain = self.settings.shutdown_timeout();
        let mut stopped = stopping;
        let deadline = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            result = serve => result?,
            _ = deadline => tracing::warn!(?drain, "drain time ran out; closing remaining calls"),
        }
        drop(stop);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Entries pruned per statement: small enough to keep locks short.
const PRUNE_BATCH: usize = 5_000;

/// Keeps the update log within its retention until the replica stops.
async fn prune_periodically(
    core: Arc<Core>,
    retention: std::time::Duration,
    every: std::time::Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match core.store.prune_updates(retention, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned the update log"),
            Err(error) => tracing::warn!(%error, "pruning the update log failed"),
        }
    }
}
