//! Settings, read once from flags and environment variables (12-factor).
//! Tests build [`Settings`] directly, so they never touch the process
//! environment.

mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::limits::Limits;
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
connection refused or timed out) or a port that cannot be bound; 1 anything else.";

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
    /// Where gRPC is served.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_LISTEN_ADDR",
        default_value = "0.0.0.0:50051"
    )]
    pub listen_addr: SocketAddr,
    /// Postgres (`postgres://user:password@host:5432/db`); unset: the
    /// embedded in-memory engine.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Redis for cross-replica fan-out; unset: the in-process bus.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    #[arg(
        long,
        global = true,
        env = "OSMIUM_REDIS_PREFIX",
        default_value = "osmium"
    )]
    pub redis_prefix: String,
    /// How long the update log keeps entries (e.g. `7d`, `12h`, `30m`, `45s`).
    #[arg(long, global = true, env = "OSMIUM_UPDATE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub update_retention: Duration,
    /// How often one replica prunes the update log.
    #[arg(long, global = true, env = "OSMIUM_PRUNE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub prune_interval: Duration,
    /// HS256 secret that tokens are signed with.
    #[arg(long, global = true, env = "OSMIUM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// A directory of `<kid>.pem` public keys (Ed25519 or RSA): tokens
    /// signed with EdDSA or RS256 name their key with `kid`, so keys rotate
    /// by adding a file and, later, removing the old one.
    #[arg(long, global = true, env = "OSMIUM_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
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
    /// Largest request accepted, in bytes.
    #[arg(long, global = true, env = "OSMIUM_MAX_REQUEST_BYTES", default_value_t = 1 << 20)]
    pub max_request_bytes: usize,
    /// Connections are closed after this long so that clients spread over
    /// new replicas; streams on them end and resume with since_seq.
    #[arg(long, global = true, env = "OSMIUM_MAX_CONNECTION_AGE", default_value = "10m", value_parser = parse_duration)]
    pub max_connection_age: Duration,
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
            redis_url: None,
            redis_prefix: "osmium".into(),
            update_retention: Duration::from_secs(7 * 86_400),
            prune_interval: Duration::from_secs(600),
            jwt_secret: None,
            jwt_public_keys: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            health_addr: None,
            jwt_audience: "osmium-chat".into(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_pool_size: 16,
            max_group_members: 250,
            stream_buffer: 1024,
            user_cache_ttl: Duration::from_secs(30),
            user_cache_size: 100_000,
            max_request_bytes: 1 << 20,
            max_connection_age: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(20),
            log_format: LogFormat::Text,
            clock_skew_ms: 0,
        }
    }
}

impl Settings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_group_members: self.max_group_members,
            stream_buffer: self.stream_buffer.max(1),
            user_cache_ttl: self.user_cache_ttl,
            user_cache_size: self.user_cache_size,
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

    /// The HS256 secret: the configured one; with public keys and no secret,
    /// none; otherwise, in embedded mode only, the documented development
    /// secret.
    pub fn jwt_secret(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.jwt_secret, &self.jwt_public_keys, &self.database_url) {
            (Some(secret), _, _) if !secret.expose().is_empty() => Ok(Some(secret.clone())),
            (_, Some(_), _) => Ok(None),
            (_, None, None) => Ok(Some(Secret::new(crate::auth::DEV_SECRET))),
            (_, None, Some(_)) => Err(ConfigError(
                "OSMIUM_JWT_SECRET or OSMIUM_JWT_PUBLIC_KEYS must be set when DATABASE_URL is: the development secret is for the embedded mode only".into(),
            )),
        }
    }

    /// Every key tokens may be verified with.
    pub fn verifier(&self) -> Result<crate::auth::Verifier, ConfigError> {
        let mut verifier = crate::auth::Verifier::new(&self.jwt_audience);
        if let Some(secret) = self.jwt_secret()? {
            verifier = verifier.with_secret(secret.expose().as_bytes());
        }
        if let Some(dir) = &self.jwt_public_keys {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                ConfigError(format!("OSMIUM_JWT_PUBLIC_KEYS {}: {e}", dir.display()))
            })?;
            for entry in entries {
                let path = entry.map_err(|e| ConfigError(e.to_string()))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                    continue;
                }
                let kid = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned();
                let pem = std::fs::read(&path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                verifier = verifier
                    .with_public_key_pem(&kid, &pem)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            }
        }
        if verifier.is_empty() {
            return Err(ConfigError("no JWT key configured".into()));
        }
        Ok(verifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7w").is_err());
        assert_eq!(parse_duration_or_secs("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration_or_secs("1m"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "osmium-chat",
            "token",
            "--user",
            "7",
            "--jwt-audience",
            "other",
            "--jwt-secret",
            "s",
        ])
        .expect("parses");
        assert_eq!(cli.settings.jwt_audience, "other");
        assert_eq!(
            cli.settings.jwt_secret.as_ref().map(Secret::expose),
            Some("s")
        );
        assert!(matches!(cli.command, Some(Command::Token { user: 7, .. })));
    }

    #[test]
    fn user_zero_is_refused_before_a_token_is_minted() {
        let refused = Cli::try_parse_from(["osmium-chat", "token", "--user", "0"])
            .expect_err("user 0 is not a user");
        assert!(refused.to_string().contains("--user"), "{refused}");
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let settings = Settings {
            database_url: Some(Secret::new("postgres://app:pg-hunter2@db/app")),
            redis_url: Some(Secret::new("redis://:redis-hunter2@cache:6379")),
            jwt_secret: Some(Secret::new("jwt-hunter2")),
            ..Settings::default()
        };
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
