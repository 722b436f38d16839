//! Why the service could not start, in words an operator can act on: what
//! failed, against which host and port (never a password), why (every cause
//! under it), and one exit code per class of failure.

use std::net::SocketAddr;

use tokio_postgres::config::Host;
use tokio_postgres::error::DbError;

use crate::config::ConfigError;
use crate::store::StoreError;
use crate::telemetry::error_chain;
use crate::tls::{explain, tls_failure, Refusal};

/// Settings that cannot work as given: a bad flag or URL, a refused login, a
/// missing database or privilege. Retrying will not help (sysexits'
/// EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// A dependency that cannot be reached, or a port already taken: retrying
/// later may work (sysexits' EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Anything else, such as a failed migration.
pub const EXIT_OTHER: u8 = 1;

/// What kind of failure stopped the start, deciding the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Config,
    Unavailable,
    Other,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Config => EXIT_CONFIG,
            Class::Unavailable => EXIT_UNAVAILABLE,
            Class::Other => EXIT_OTHER,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Postgres could not be used; `target` names it without the password.
    #[error("Postgres at {target}: {problem}")]
    Postgres {
        target: String,
        problem: &'static str,
        class: Class,
        #[source]
        source: StoreError,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Redis refused this replica's TLS; `target` names it without the password.
    #[error("Redis at {target}: {problem}")]
    Redis {
        target: String,
        problem: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("no snowflake worker number is free: all 1024 are leased by live replicas (more replicas than ids allow, or leases of stopped ones not yet expired; retry after OSMIUM_WORKER_LEASE_TTL)")]
    NoWorker,
    #[error("worker lease: {0}")]
    Lease(String),
    #[error("the snowflake worker lease was lost ({0:?}): stopped so as to mint no id another replica may mint")]
    LeaseLost(super::lease::Lost),
    #[error("token keys: {0}")]
    Keys(#[from] crate::auth::KeyError),
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

impl StartError {
    /// A store failure at start-up, with what it means for the operator.
    pub fn postgres(target: &str, source: StoreError) -> Self {
        let (class, problem) = diagnose(&source);
        Self::Postgres {
            target: target.to_owned(),
            problem,
            class,
            source,
        }
    }

    pub fn class(&self) -> Class {
        match self {
            Self::Config(_) => Class::Config,
            Self::Keys(error) if error.transient => Class::Unavailable,
            Self::Keys(_) => Class::Config,
            Self::Postgres { class, .. } => *class,
            Self::Redis { .. } => Class::Config,
            Self::Store(source) => diagnose(source).0,
            Self::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                Class::Unavailable
            }
            Self::Listen { .. } => Class::Config,
            Self::NoWorker | Self::LeaseLost(_) => Class::Unavailable,
            Self::Lease(_) | Self::Reflection(_) | Self::Serve(_) => Class::Other,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.class().exit_code()
    }

    /// The whole story on one line: the failure, every cause under it, and
    /// Postgres' SQLSTATE when the server sent one.
    pub fn report(&self) -> String {
        let mut text = error_chain(self);
        if let Some(db) = find::<DbError>(self) {
            text.push_str(&format!(" (SQLSTATE {})", db.code().code()));
        }
        text
    }
}

/// `postgres://user@host:port/database` of a connection URL, without its
/// password.
pub fn postgres_target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| SocketAddr::new(*addr, port(i)).to_string())
            .collect();
    }
    let user = config.get_user().unwrap_or("(no user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{database}", hosts.join(","))
}

/// The first cause of type `T` in the chain under `error`, itself included.
fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

/// What a store failure means to an operator, and its class.
fn diagnose(error: &StoreError) -> (Class, &'static str) {
    if let Some(db) = find::<DbError>(error) {
        return by_sqlstate(db.code().code());
    }
    if let StoreError::Migration(text) = error {
        // Migration errors arrive as text that names the SQLSTATE.
        if let Some(code) = text.split("SQLSTATE ").nth(1).and_then(|t| t.get(..5)) {
            return by_sqlstate(code);
        }
        return (Class::Other, "a migration failed");
    }
    if let StoreError::Url(_) = error {
        return (
            Class::Config,
            "the CA that sslrootcert (or PGSSLROOTCERT) names cannot be used",
        );
    }
    if let Some(tls) = tls_failure(error) {
        return (Class::Config, tls_problem(tls));
    }
    if error_chain(error).contains("server does not support TLS") {
        return (
            Class::Config,
            "the URL's sslmode asks for TLS, which the server does not offer: turn on ssl on the server, or use sslmode=prefer or disable on a trusted network",
        );
    }
    if find::<std::io::Error>(error).is_some() {
        return (
            Class::Unavailable,
            "cannot connect (is the server up, and are the host and port in DATABASE_URL right?)",
        );
    }
    if matches!(
        find::<deadpool_postgres::PoolError>(error),
        Some(deadpool_postgres::PoolError::Timeout(_))
    ) || error_chain(error).contains("timeout")
    {
        return (Class::Unavailable, "no answer in time");
    }
    (Class::Other, "cannot use it")
}

/// A refused certificate or handshake, in words naming the setting to check.
fn tls_problem(error: &rustls::Error) -> &'static str {
    match explain(error) {
        Refusal::WrongName => "TLS: the server's certificate does not name the host in DATABASE_URL (sslmode=verify-full): connect by a name it holds, or use verify-ca",
        Refusal::Untrusted => "TLS: the server's certificate is not signed by the CA in sslrootcert",
        Refusal::Handshake => "TLS: the handshake failed",
    }
}

fn by_sqlstate(code: &str) -> (Class, &'static str) {
    match code {
        "28P01" | "28000" => (
            Class::Config,
            "the server refused the login: check the user and password in DATABASE_URL",
        ),
        "3D000" => (
            Class::Config,
            "the database does not exist: create it, or correct its name in DATABASE_URL",
        ),
        "42501" => (
            Class::Config,
            "permission denied: migrations need a user that may create tables in the database's schema (see the deployment guide)",
        ),
        "3F000" => (
            Class::Config,
            "no schema to create tables in: the schema in search_path is missing, or the user lacks USAGE on it",
        ),
        "53300" | "53400" => (
            Class::Unavailable,
            "the server has no connection slot left: replicas x OSMIUM_DB_POOL_SIZE must stay under its max_connections",
        ),
        "57P03" => (Class::Unavailable, "the server is starting up or shutting down"),
        code if code.starts_with("08") => (Class::Unavailable, "the connection failed"),
        _ => (Class::Other, "the server reported an error"),
    }
}
