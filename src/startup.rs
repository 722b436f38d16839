//! Builds the application from settings: engines, domain, gRPC services,
//! health and reflection, metrics, on bound listeners. `main` and the tests
//! start exactly the same thing.

mod error;
mod incoming;
mod lease;
mod not_ready;
mod prune;
mod redis;

pub use error::{postgres_target, Class, StartError, EXIT_CONFIG, EXIT_OTHER, EXIT_UNAVAILABLE};
pub use lease::Lost as LeaseLost;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::api::{ChatApi, DirectoryApi, Register};
use crate::auth::{reload_periodically, Authenticate, JwksSource, KeyRing, Verifier};
use crate::bus::local::LocalBus;
use crate::bus::redis::{Ping, RedisBus};
use crate::bus::Bus;
use crate::config::{ConfigError, Settings};
use crate::domain::Core;
use crate::ephemeral::local::LocalEphemeral;
use crate::ephemeral::redis::RedisEphemeral;
use crate::ephemeral::Ephemeral;
use crate::model::Snowflakes;
use crate::proto::service::chat_service_server::ChatServiceServer;
use crate::proto::service::user_directory_server::UserDirectoryServer;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::store::memory::MemoryStore;
use crate::store::postgres::{PgUrl, PostgresStore};
use crate::store::Store;
use crate::telemetry::metrics::{self, Metrics, RpcMetricsLayer};
use incoming::Incoming;
use lease::{Lost, WorkerLease};
use not_ready::NotReady;
use prune::prune_periodically;

pub struct Application {
    listener: Arc<TcpListener>,
    /// One health state for every endpoint that serves it.
    reporter: HealthReporter,
    health: HealthServer<HealthService>,
    /// Ends the plaintext health endpoint, if any, when dropped or sent.
    health_stop: watch::Sender<bool>,
    health_port: Option<u16>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    metrics_listener: TcpListener,
    settings: Settings,
    core: Arc<Core>,
    /// The worker number `core` mints ids with, renewed while serving.
    lease: WorkerLease,
    verifier: Arc<Verifier>,
}

/// Opens the configured store, migrating Postgres first.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    match &settings.database_url {
        Some(url) => {
            // The error never repeats the URL: it may hold a password.
            let url = PgUrl::parse_with(url.expose(), &settings.postgres_tls())
                .map_err(|e| ConfigError(format!("DATABASE_URL: {e}")))?;
            let target = postgres_target(&url.config);
            tracing::info!(%target, pool = settings.db_pool_size, reads = settings.db_read_concurrency, sslmode = ?url.mode, "connecting to Postgres");
            let store =
                PostgresStore::open(url, settings.db_pool_size, settings.session_timeouts())
                    .map_err(|e| StartError::postgres(&target, e))?
                    .with_read_concurrency(settings.db_read_concurrency as usize);
            store
                .migrate()
                .await
                .map_err(|e| StartError::postgres(&target, e))?;
            Ok(Arc::new(store))
        }
        None => {
            tracing::warn!("DATABASE_URL is not set: using the embedded memory engine; data lives in memory only and is lost on exit");
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

impl Application {
    /// Binds first and answers health checks with NOT_SERVING while the
    /// store connects and migrates, so probes see a starting replica, not a
    /// dead one.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let verifier = Arc::new(verifier(&settings).await?);
        let tls = settings.tls()?;
        let listener = Arc::new(bind(settings.listen_addr).await?);
        let metrics_listener = bind(settings.metrics_addr).await?;

        let (started, starting) = oneshot::channel::<()>();
        let reporter = HealthReporter::new();
        set_health(&reporter, ServingStatus::NotServing).await;
        let health = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let (health_stop, mut health_stopping) = watch::channel(false);
        let mut health_port = None;
        if let Some(addr) = settings.health_addr {
            let health_listener = bind(addr).await?;
            health_port = health_listener.local_addr().ok().map(|a| a.port());
            tokio::spawn(
                Server::builder()
                    .add_service(health.clone())
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(health_listener),
                        async move {
                            let _ = health_stopping.wait_for(|s| *s).await;
                        },
                    ),
            );
        }
        // Until the full server takes over the listener, calls get a
        // retryable UNAVAILABLE; between the two, connections wait in the
        // listener's backlog.
        let startup_server = tokio::spawn(
            tls_builder(tls.clone())?
                .add_service(health.clone())
                .add_service(NotReady::<ChatServiceServer<ChatApi>>::new())
                .add_service(NotReady::<UserDirectoryServer<DirectoryApi>>::new())
                .serve_with_incoming_shutdown(Incoming(listener.clone()), async {
                    let _ = starting.await;
                }),
        );
        let core = Self::start_core(&settings).await;
        let _ = started.send(());
        let _ = startup_server.await;
        let (core, lease) = core?;
        Ok(Self {
            listener,
            reporter,
            health,
            health_stop,
            health_port,
            tls,
            metrics_listener,
            settings,
            core,
            lease,
            verifier,
        })
    }

    async fn start_core(settings: &Settings) -> Result<(Arc<Core>, WorkerLease), StartError> {
        let store = open_store(settings).await?;
        let (bus, ephemeral): (Arc<dyn Bus>, Arc<dyn Ephemeral>) = match &settings.redis_url {
            Some(url) => {
                // One command connection, shared by the bus and the ephemeral store.
                let redis = Arc::new(redis::open(url.expose(), settings).await?);
                if settings.redis_ping_interval.is_zero() {
                    return Err(
                        ConfigError("OSMIUM_REDIS_PING_INTERVAL must be above 0".into()).into(),
                    );
                }
                let ping = Ping {
                    interval: settings.redis_ping_interval,
                    timeout: settings.redis_ping_timeout,
                };
                let bus = RedisBus::start(redis.clone(), &settings.redis_prefix, ping)
                    .map_err(|e| ConfigError(format!("REDIS_URL: {e}")))?;
                let ephemeral = RedisEphemeral::new(redis, &settings.redis_prefix);
                (Arc::new(bus), Arc::new(ephemeral))
            }
            None => (
                Arc::new(LocalBus::default()),
                Arc::new(LocalEphemeral::default()),
            ),
        };
        let lease = WorkerLease::acquire(store.clone(), settings.worker_lease_ttl).await?;
        let core = Core::new(
            store,
            bus,
            ephemeral,
            Snowflakes::with_skew(lease.worker(), settings.clock_skew_ms),
            settings.limits(),
        );
        Ok((core, lease))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The plaintext health endpoint's port, when one is configured.
    pub fn health_port(&self) -> Option<u16> {
        self.health_port
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener
            .local_addr()
            .map_or(self.settings.metrics_addr.port(), |a| a.port())
    }

    /// Serves until `shutdown` resolves, then: health turns NOT_SERVING,
    /// the listener closes, streams end with UNAVAILABLE, and in-flight
    /// calls get the configured drain time to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (reporter, health) = (self.reporter, self.health);
        set_health(&reporter, ServingStatus::Serving).await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop, stopping) = watch::channel(false);
        let until_stopped = || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s).await;
            }
        };
        let sweeping = self.core.clone();
        let (sweep_every, sweep_stop) = (self.settings.stream_sweep_interval, stopping.clone());
        tokio::spawn(async move {
            sweeping
                .updates()
                .sweep_periodically(sweep_every, sweep_stop)
                .await
        });
        // The lease is renewed until the stop; its loss stops the replica.
        let (keeper, lost) = self.lease.spawn_keeper(stopping.clone());
        let (lost_note, lost_seen) = watch::channel(None::<Lost>);
        tokio::spawn(prune_periodically(
            self.core.clone(),
            self.settings.update_retention,
            self.settings.prune_interval,
            stopping.clone(),
        ));
        let metrics = Arc::new(Metrics::new(self.core.clone()));
        let metrics_addr = self
            .metrics_listener
            .local_addr()
            .unwrap_or(self.settings.metrics_addr);
        tokio::spawn(metrics::serve(
            self.metrics_listener,
            metrics.clone(),
            until_stopped(),
        ));

        tokio::spawn(reload_periodically(
            self.verifier.keys().clone(),
            self.settings.jwt_keys_reload,
            stopping.clone(),
        ));
        let max_bytes = self.settings.max_request_bytes;
        let chat = ChatServiceServer::new(ChatApi::new(self.core.clone(), stopping.clone()))
            .max_decoding_message_size(max_bytes);
        let directory = UserDirectoryServer::new(DirectoryApi::new(self.core.clone()))
            .max_decoding_message_size(max_bytes);

        let addr = self
            .listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr);
        tracing::info!(
            %addr,
            tls = self.tls.is_some(),
            store = self.core.stats().engines().0,
            bus = self.core.stats().engines().1,
            "serving gRPC"
        );
        tracing::info!(addr = %metrics_addr, "serving Prometheus metrics at /metrics");
        let signal = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    lost = lost => { let _ = lost_note.send(Some(lost)); }
                }
                // Probes see the replica leave before its listener closes.
                set_health(&reporter, ServingStatus::NotServing).await;
                let _ = stop.send(true);
            }
        };
        let serve = tls_builder(self.tls)?
            .max_connection_age(self.settings.max_connection_age)
            .max_connection_age_grace(Duration::from_secs(30))
            .http2_keepalive_interval(
                Some(self.settings.http2_keepalive_interval).filter(|d| !d.is_zero()),
            )
            .http2_keepalive_timeout(Some(self.settings.http2_keepalive_timeout))
            .trace_fn(crate::telemetry::rpc_span)
            .layer(RpcMetricsLayer(metrics))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(Authenticate::new(
                self.verifier.clone(),
                Register::new(self.core.clone(), chat),
            ))
            .add_service(Authenticate::new(self.verifier, directory))
            .serve_with_incoming_shutdown(Incoming(self.listener), signal);

        let drain = self.settings.shutdown_timeout;
        let deadline = {
            let stopped = until_stopped();
            let lost_seen = lost_seen.clone();
            async move {
                stopped.await;
                // Without its lease the replica must not mint another id:
                // no drain.
                let drain = match *lost_seen.borrow() {
                    Some(_) => Duration::ZERO,
                    None => drain,
                };
                tokio::time::sleep(drain).await;
                drain
            }
        };
        let served = tokio::select! {
            result = serve => result.map_err(StartError::from),
            drain = deadline => {
                tracing::warn!(?drain, "drain time ran out; closing remaining calls");
                Ok(())
            }
        };
        let _ = stop.send(true);
        // Calls are done; what they published may still be queued for Redis.
        self.core.drain(PUBLISH_DRAIN.min(drain)).await;
        drop(stop);
        let _ = self.health_stop.send(true);
        let lost = *lost_seen.borrow();
        WorkerLease::finish(keeper, lost).await?;
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The token verifier the settings describe, its keys read once.
pub async fn verifier(settings: &Settings) -> Result<Verifier, StartError> {
    let secret = settings.jwt_secret()?;
    if settings.uses_dev_secret() {
        tracing::warn!(
            "no token key is configured: accepting tokens signed with the development secret, on loopback only (see README)"
        );
    }
    let sources = settings.key_sources()?;
    if let Some(JwksSource::Url(uri)) = &sources.jwks {
        if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            tracing::warn!(%uri, "OSMIUM_JWT_JWKS is fetched over plain HTTP: whoever sits on the path can substitute keys; use https off a trusted network");
        }
    }
    let keys = Arc::new(KeyRing::load(sources).await?);
    Ok(Verifier::new(
        secret.as_ref().map(|s| s.expose().as_bytes()),
        keys,
        &settings.jwt_audience,
        settings.jwt_issuer.as_deref(),
    ))
}

/// A server builder, with TLS (and client certificates) when configured.
fn tls_builder(tls: Option<tonic::transport::ServerTlsConfig>) -> Result<Server, StartError> {
    Ok(match tls {
        Some(tls) => Server::builder().tls_config(tls)?,
        None => Server::builder(),
    })
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status("osmium.chat.v1.ChatService", status)
        .await;
    reporter
        .set_service_status("osmium.chat.v1.UserDirectory", status)
        .await;
}

/// How long a stopping replica waits for its queued publishes to leave.
const PUBLISH_DRAIN: Duration = Duration::from_secs(5);
