//! Settings, read once from flags and environment variables (12-factor).
//! Tests build [`Settings`] directly, so they never touch the process
//! environment.

mod limits;
mod tokens;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::limits::Limits;
use crate::store::postgres::SessionTimeouts;
pub use limits::{parse_rate, LimitSettings};
use values::parse_user_id;
pub use values::{parse_duration, parse_duration_or_secs, ConfigError, Secret};

/// Printed after the flags by `--help`: what is read from the environment
/// without a flag of its own.
const ENVIRONMENT_HELP: &str = "\
Also read from the environment:
  RUST_LOG                        log filter, e.g. `info` (the default) or `warn,osmium_chat=debug`
  OTEL_EXPORTER_OTLP_ENDPOINT     export traces over OTLP/gRPC to this endpoint; unset: no export
  OTEL_*                          the other standard OpenTelemetry variables (service name, headers, sampler...)
  NO_COLOR                        plain log text even on a terminal (logs are never coloured into files or pipes)

Secret values (DATABASE_URL, REDIS_URL, OSMIUM_JWT_SECRET) are never printed here or in logs.

Exit codes: 0 stopped cleanly; 64 configuration that cannot work (a bad flag or URL, a refused
login, a missing database or privilege); 69 a dependency unreachable (Postgres down, unknown host,
connection refused or timed out), a port that cannot be bound, no snowflake worker number free,
or the worker lease lost while serving; 1 anything else.";

#[derive(Debug, Parser)]
#[command(
    name = "osmium-chat",
    version,
    about = "gRPC service for the chats of the Osmium Chat Protocol",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply the database migrations and exit (for a Kubernetes Job).
    Migrate,
    /// Print a token for local use, signed (HS256) with OSMIUM_JWT_SECRET (in
    /// the embedded mode without one, the development secret) for the
    /// audience OSMIUM_JWT_AUDIENCE: the same key and audience the server
    /// started with these settings accepts.
    Token {
        /// The user id the token speaks for (`sub`), 1 or more.
        #[arg(long, value_parser = parse_user_id)]
        user: u64,
        /// A display name: registers the user on first use.
        #[arg(long)]
        name: Option<String>,
        /// A service-role token, allowed to call UserDirectory.
        #[arg(long)]
        service: bool,
        /// Lifetime (e.g. `24h`, `30m`; a bare number is seconds).
        #[arg(long, default_value = "24h", value_parser = parse_duration_or_secs)]
        ttl: Duration,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of the service. Each flag is global, so it may come before
/// or after a subcommand (`osmium-chat token --user 1 --jwt-audience x`).
/// Secret values hide their environment value from `--help`
/// (`hide_env_values`) and are [`Secret`]s, so `Debug` never shows them.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// Where gRPC is served. Loopback by default; any other address needs
    /// a configured token key (the development secret is for loopback only).
    #[arg(
        long,
        global = true,
        env = "OSMIUM_LISTEN_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub listen_addr: SocketAddr,
    /// Postgres (`postgres://user:password@host:5432/db`); unset: the
    /// embedded in-memory engine.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// libpq's: the sslmode when DATABASE_URL names none (disable, prefer,
    /// require, verify-ca, verify-full; unset: prefer).
    #[arg(long, global = true, env = "PGSSLMODE")]
    pub pg_ssl_mode: Option<String>,
    /// libpq's: the CA file (or `system`) when DATABASE_URL names no
    /// sslrootcert.
    #[arg(long, global = true, env = "PGSSLROOTCERT")]
    pub pg_ssl_root_cert: Option<String>,
    /// Redis for cross-replica fan-out; unset: the in-process bus.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// PEM CA certificates a `rediss://` REDIS_URL's server must chain to;
    /// unset: the system's trust store.
    #[arg(long, global = true, env = "OSMIUM_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_REDIS_PREFIX",
        default_value = "osmium"
    )]
    pub redis_prefix: String,
    /// How often the pub/sub connection, which otherwise only listens,
    /// PINGs Redis, so that a connection gone silent without closing is
    /// noticed; above 0.
    #[arg(long, global = true, env = "OSMIUM_REDIS_PING_INTERVAL", default_value = "10s", value_parser = parse_duration_or_secs)]
    pub redis_ping_interval: Duration,
    /// How long that PING may go unanswered before the connection counts
    /// as lost: it reconnects and its streams catch up from the log.
    #[arg(long, global = true, env = "OSMIUM_REDIS_PING_TIMEOUT", default_value = "3s", value_parser = parse_duration_or_secs)]
    pub redis_ping_timeout: Duration,
    /// How long the update log keeps entries (e.g. `7d`, `12h`, `30m`, `45s`).
    #[arg(long, global = true, env = "OSMIUM_UPDATE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub update_retention: Duration,
    /// How often one replica prunes the update log.
    #[arg(long, global = true, env = "OSMIUM_PRUNE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub prune_interval: Duration,
    /// HS256 secret that tokens are signed with, 32 bytes or more.
    #[arg(long, global = true, env = "OSMIUM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// A directory of `<kid>.pem` public keys (Ed25519 or RSA): tokens
    /// signed with EdDSA or RS256 name their key with `kid`, so keys rotate
    /// by adding a file and, later, removing the old one; re-read every
    /// OSMIUM_JWT_KEYS_RELOAD.
    #[arg(long, global = true, env = "OSMIUM_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
    /// A JWKS document (the JSON of an auth service's public keys), from a
    /// file or an `http(s)://` URL: re-read every OSMIUM_JWT_KEYS_RELOAD,
    /// and at once when a token names an unknown `kid` (at most every 10s).
    #[arg(long, global = true, env = "OSMIUM_JWT_JWKS")]
    pub jwt_jwks: Option<String>,
    /// How often OSMIUM_JWT_PUBLIC_KEYS and OSMIUM_JWT_JWKS are re-read; a
    /// source that fails to read keeps its last good keys.
    #[arg(long, global = true, env = "OSMIUM_JWT_KEYS_RELOAD", default_value = "30s", value_parser = parse_duration)]
    pub jwt_keys_reload: Duration,
    /// The `iss` every token must carry; unset: `iss` is not checked.
    #[arg(long, global = true, env = "OSMIUM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` every token must carry.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_JWT_AUDIENCE",
        default_value = "osmium-chat"
    )]
    pub jwt_audience: String,
    /// PEM certificate chain: serve gRPC over TLS (with OSMIUM_TLS_KEY).
    #[arg(long, global = true, env = "OSMIUM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of OSMIUM_TLS_CERT.
    #[arg(long, global = true, env = "OSMIUM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(
        long,
        global = true,
        env = "OSMIUM_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// A plaintext gRPC health endpoint besides the main one, for probes
    /// that cannot speak TLS (Kubernetes' native gRPC probes).
    #[arg(long, global = true, env = "OSMIUM_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,
    /// Where Prometheus metrics are served (`/metrics`).
    #[arg(
        long,
        global = true,
        env = "OSMIUM_METRICS_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_addr: SocketAddr,
    /// Postgres connections per replica: replicas x this must stay under
    /// the server's max_connections.
    #[arg(long, global = true, env = "OSMIUM_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Single-statement reads each replica runs on Postgres at once (at
    /// most the pool size); more wait their turn in order. A read is the
    /// database's CPU alone: replicas x this near the database's cores keeps
    /// it busy without stretching every read's latency.
    #[arg(long, global = true, env = "OSMIUM_DB_READ_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub db_read_concurrency: u32,
    /// Longest a single SQL statement may run before Postgres cancels it;
    /// the call then fails with UNAVAILABLE and writes nothing.
    #[arg(long, global = true, env = "OSMIUM_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = parse_duration_or_secs)]
    pub db_statement_timeout: Duration,
    /// Longest a statement waits for a row lock another call holds.
    #[arg(long, global = true, env = "OSMIUM_DB_LOCK_TIMEOUT", default_value = "2s", value_parser = parse_duration_or_secs)]
    pub db_lock_timeout: Duration,
    /// Postgres ends a session left idle inside a transaction this long: a
    /// backstop, so that a lost connection never holds locks for longer.
    #[arg(long, global = true, env = "OSMIUM_DB_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "30s", value_parser = parse_duration_or_secs)]
    pub db_idle_in_transaction_timeout: Duration,
    /// How long a replica's snowflake worker lease lasts unrenewed. It is
    /// renewed every third of this; a replica that cannot renew it for half
    /// of it stops. Keep it above twice OSMIUM_SHUTDOWN_TIMEOUT.
    #[arg(long, global = true, env = "OSMIUM_WORKER_LEASE_TTL", default_value = "60s", value_parser = parse_duration_or_secs)]
    pub worker_lease_ttl: Duration,
    /// Most participants in a group, creator included.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_MAX_GROUP_MEMBERS",
        default_value_t = 250
    )]
    pub max_group_members: usize,
    /// Updates buffered per Subscribe stream before a slow stream is ended.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_STREAM_BUFFER",
        default_value_t = 1024
    )]
    pub stream_buffer: usize,
    /// Bytes of live updates buffered per Subscribe stream before a slow
    /// stream is ended (updates replayed from the log wait instead).
    #[arg(long, global = true, env = "OSMIUM_STREAM_BUFFER_BYTES", default_value_t = 8 << 20)]
    pub stream_buffer_bytes: usize,
    /// Subscribe streams one user may hold open on one replica; one more
    /// is refused with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_MAX_STREAMS_PER_USER",
        default_value_t = 32
    )]
    pub max_streams_per_user: usize,
    /// How often each replica compares its streams with their users' logs,
    /// delivering what a lost publish left behind (within two of these).
    #[arg(long, global = true, env = "OSMIUM_STREAM_SWEEP_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub stream_sweep_interval: Duration,
    /// Live invites per group and per-user rates.
    #[command(flatten)]
    pub limits: LimitSettings,
    /// How long a replica may serve a user's profile from its cache after
    /// reading it. Changes reach every replica's cache through the bus at
    /// once; this bounds what a replica that missed one serves meanwhile.
    #[arg(long, global = true, env = "OSMIUM_USER_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub user_cache_ttl: Duration,
    /// Most user profiles cached per replica (0: no cache).
    #[arg(
        long,
        global = true,
        env = "OSMIUM_USER_CACHE_SIZE",
        default_value_t = 100_000
    )]
    pub user_cache_size: usize,
    /// Most bytes of user profiles (as encoded) cached per replica: a
    /// profile may carry a photo preview of several KiB, so the count alone
    /// does not bound the cache's memory.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_USER_CACHE_BYTES",
        default_value_t = 64 << 20
    )]
    pub user_cache_bytes: usize,
    /// Largest request accepted, in bytes.
    #[arg(long, global = true, env = "OSMIUM_MAX_REQUEST_BYTES", default_value_t = 1 << 20)]
    pub max_request_bytes: usize,
    /// Connections are closed after this long so that clients spread over
    /// new replicas; streams on them end and resume with since_seq.
    #[arg(long, global = true, env = "OSMIUM_MAX_CONNECTION_AGE", default_value = "10m", value_parser = parse_duration)]
    pub max_connection_age: Duration,
    /// How often the server PINGs an idle HTTP/2 connection, so that a
    /// client gone without a word (its Subscribe streams with it) is noticed
    /// and its resources freed; `0s` turns the pings off.
    #[arg(long, global = true, env = "OSMIUM_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration_or_secs)]
    pub http2_keepalive_interval: Duration,
    /// How long a keepalive PING may go unanswered before the connection
    /// is closed.
    #[arg(long, global = true, env = "OSMIUM_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration_or_secs)]
    pub http2_keepalive_timeout: Duration,
    /// How long SIGTERM waits for in-flight calls (e.g. `20s`; a bare
    /// number is seconds).
    #[arg(long, global = true, env = "OSMIUM_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration_or_secs)]
    pub shutdown_timeout: Duration,
    /// Log lines as human-readable text, or as JSON objects (one per line,
    /// for log collectors: use it in production).
    #[arg(
        long,
        global = true,
        env = "OSMIUM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Milliseconds added to this replica's clock when it makes ids: a seam
    /// for tests of replicas whose clocks disagree; never set in production.
    #[arg(skip)]
    pub clock_skew_ms: i64,
}

impl Default for Settings {
    /// The embedded mode on an ephemeral port: what tests start from.
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            pg_ssl_mode: None,
            pg_ssl_root_cert: None,
            redis_url: None,
            redis_ca_file: None,
            redis_prefix: "osmium".into(),
            redis_ping_interval: Duration::from_secs(10),
            redis_ping_timeout: Duration::from_secs(3),
            update_retention: Duration::from_secs(7 * 86_400),
            prune_interval: Duration::from_secs(600),
            jwt_secret: None,
            jwt_public_keys: None,
            jwt_jwks: None,
            jwt_keys_reload: Duration::from_secs(30),
            jwt_issuer: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            health_addr: None,
            jwt_audience: "osmium-chat".into(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_pool_size: 16,
            db_read_concurrency: 8,
            db_statement_timeout: Duration::from_secs(5),
            db_lock_timeout: Duration::from_secs(2),
            db_idle_in_transaction_timeout: Duration::from_secs(30),
            worker_lease_ttl: Duration::from_secs(60),
            max_group_members: 250,
            stream_buffer: 1024,
            stream_buffer_bytes: 8 << 20,
            max_streams_per_user: 32,
            stream_sweep_interval: Duration::from_secs(1),
            limits: LimitSettings::default(),
            user_cache_ttl: Duration::from_secs(30),
            user_cache_size: 100_000,
            user_cache_bytes: 64 << 20,
            max_request_bytes: 1 << 20,
            max_connection_age: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(20),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            log_format: LogFormat::Text,
            clock_skew_ms: 0,
        }
    }
}

impl Settings {
    /// The limits every pooled Postgres session runs under.
    pub fn session_timeouts(&self) -> SessionTimeouts {
        SessionTimeouts {
            statement: self.db_statement_timeout,
            lock: self.db_lock_timeout,
            idle_in_transaction: self.db_idle_in_transaction_timeout,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_group_members: self.max_group_members,
            stream_buffer: self.stream_buffer.max(1),
            stream_buffer_bytes: self.stream_buffer_bytes.max(1),
            max_streams_per_user: self.max_streams_per_user.max(1),
            max_invites_per_group: self.limits.max_invites_per_group.max(1),
            rates: self.limits.rates(),
            user_cache_ttl: self.user_cache_ttl,
            user_cache_size: self.user_cache_size,
            user_cache_bytes: self.user_cache_bytes,
        }
    }

    /// What applies to Postgres TLS where DATABASE_URL does not say.
    pub fn postgres_tls(&self) -> crate::store::postgres::TlsDefaults {
        crate::store::postgres::TlsDefaults {
            mode: self.pg_ssl_mode.clone(),
            root_cert: self.pg_ssl_root_cert.clone(),
        }
    }

    /// The server's TLS settings, read from the configured files; `None`
    /// serves plaintext (the default, for a mesh or a trusted network).
    pub fn tls(&self) -> Result<Option<tonic::transport::ServerTlsConfig>, ConfigError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_client_ca.is_some() {
                return Err(ConfigError(
                    "TLS needs both OSMIUM_TLS_CERT and OSMIUM_TLS_KEY".into(),
                ));
            }
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))
        };
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        Ok(Some(tls))
    }
}

#[cfg(test)]
mod tests;
