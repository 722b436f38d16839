//! The one command connection to Redis that a replica shares between the bus
//! (publishing, fetching named payloads) and the ephemeral store (typing and
//! rate-limit scripts).
//!
//! It lives here, beside both, rather than inside either, so that neither
//! module imports the other: startup opens one [`RedisCommands`] and hands
//! the same handle to [`crate::bus::redis::RedisBus`] and
//! [`crate::ephemeral::redis::RedisEphemeral`]. The bus's pub/sub connection
//! is its own and is opened from [`RedisCommands::client`].
//!
//! The client is built once, TLS included, so every connection made from
//! it (commands, pub/sub) speaks the same TLS: a `rediss://` URL verifies
//! the server against the CA file given, else the system's trust store;
//! `rediss://...#insecure` skips verification, as the redis crate defines.

use std::path::Path;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// How long a publish or an ephemeral command may take before it counts as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long callers fail fast after a failed connection attempt.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// TCP keepalive on every Redis connection: a peer gone without a word (a
/// node lost, a NAT entry dropped) is noticed after about
/// `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES` (30 s) of
/// silence, and unacknowledged writes give up after `USER_TIMEOUT`. The
/// pub/sub connection, which otherwise only reads, also PINGs.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
const KEEPALIVE_PROBES: u32 = 3;
#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Redis could not be reached or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A span per Redis command, under the RPC's.
pub fn redis_span(command: &'static str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        otel.name = command,
        otel.kind = "client",
        db.system = "redis",
        db.operation.name = command,
    )
}

#[derive(Default)]
struct Slot {
    connection: Option<ConnectionManager>,
    /// When connecting last failed.
    failed_at: Option<Instant>,
}

/// The client, and the command connection created on first use and
/// reconnecting by itself afterwards.
pub struct RedisCommands {
    client: redis::Client,
    slot: Mutex<Slot>,
}

impl RedisCommands {
    /// Parses the URL and reads the CA file, if any; nothing here waits
    /// for Redis to be up.
    pub fn open(url: &str, ca_file: Option<&Path>) -> Result<Self, Unavailable> {
        crate::tls::install_default_provider();
        let parsed = redis::Client::open(url).map_err(|e| Unavailable(e.to_string()))?;
        let info = parsed
            .get_connection_info()
            .clone()
            .set_tcp_settings(tcp_settings());
        let client = match ca_file {
            None => redis::Client::open(info),
            Some(path) => {
                let root_cert = Some(crate::tls::read_pem(path).map_err(Unavailable)?);
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                };
                redis::Client::build_with_tls(info, certificates)
            }
        }
        .map_err(|e| Unavailable(e.to_string()))?;
        Ok(Self {
            client,
            slot: Mutex::default(),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the URL asks for TLS.
    pub fn is_tls(&self) -> bool {
        matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        )
    }

    /// Connects once and lets go, to find out at start-up whether the
    /// server's certificate is accepted; the typed error says why not.
    pub async fn probe(&self) -> Result<(), redis::RedisError> {
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))?;
        connection.map(drop)
    }

    /// The command connection. After a failed attempt, callers fail fast for
    /// a moment instead of queueing behind another connect timeout.
    pub async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = slot.connection.as_ref() {
            return Ok(connection.clone());
        }
        if slot
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_PAUSE)
        {
            return Err(Unavailable("redis unreachable".into()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| Unavailable("timed out connecting".into()))
        .and_then(|r| r.map_err(|e| Unavailable(e.to_string())));
        match connection {
            Ok(connection) => {
                slot.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                slot.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }
}

/// Socket options of every Redis connection (see [`KEEPALIVE_IDLE`]).
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_PROBES);
    let settings = redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let settings = settings.set_user_timeout(USER_TIMEOUT);
    settings
}
