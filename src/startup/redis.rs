//! Opens the replica's Redis client. Redis may be down at start-up, and the
//! replica starts anyway (the bus resyncs once it is back); a certificate
//! Redis refuses, or one it presents that is not trusted, is a setting that
//! will not fix itself, so a `rediss://` URL is tried once and such a
//! refusal stops the start.

use std::path::Path;

use super::StartError;
use crate::config::{ConfigError, Settings};
use crate::redis_conn::RedisCommands;
use crate::tls::{explain, tls_failure, Refusal};

pub(super) async fn open(url: &str, settings: &Settings) -> Result<RedisCommands, StartError> {
    let ca_file = settings.redis_ca_file.as_deref();
    if ca_file.is_some() && !url.starts_with("rediss://") {
        return Err(ConfigError(
            "OSMIUM_REDIS_CA_FILE is set, but REDIS_URL is not a rediss:// (TLS) URL".into(),
        )
        .into());
    }
    if let Some(path) = ca_file {
        // Read here too, so that an unreadable file is named as the setting.
        crate::tls::roots_from_file(path)
            .map_err(|e| ConfigError(format!("OSMIUM_REDIS_CA_FILE: {e}")))?;
    }
    let redis = RedisCommands::open(url, ca_file.map(Path::new))
        .map_err(|e| ConfigError(format!("REDIS_URL: bus unavailable: {e}")))?;
    if !redis.is_tls() {
        return Ok(redis);
    }
    let target = format!("rediss://{}", redis.client().get_connection_info().addr());
    match redis.probe().await {
        Ok(()) => tracing::info!(%target, "connected to Redis over TLS"),
        Err(source) => match tls_failure(&source) {
            Some(tls) => {
                return Err(StartError::Redis {
                    target,
                    problem: problem(explain(tls)),
                    source,
                })
            }
            None => {
                tracing::warn!(%target, error = %source, "cannot connect to Redis; starting anyway, the bus catches up once it answers")
            }
        },
    }
    Ok(redis)
}

fn problem(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::WrongName => "TLS: the server's certificate does not name the host in REDIS_URL",
        Refusal::Untrusted => "TLS: the server's certificate is not signed by the CA in OSMIUM_REDIS_CA_FILE (or, that unset, by one the system trusts)",
        Refusal::Handshake => "TLS: the handshake failed (does the server speak TLS on that port?)",
    }
}
