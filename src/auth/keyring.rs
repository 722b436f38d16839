//! The keys tokens name by `kid`, kept current while the service runs: the
//! `<kid>.pem` directory and the JWKS (a file or an HTTP(S) URL) are re-read
//! periodically, and at once when a token names a `kid` nobody has seen yet
//! (at most once per [`UNKNOWN_KID_RELOAD`]). A source that fails to read
//! keeps its last good keys; only the first read, at start, must succeed.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::Uri;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use super::fetch::{FetchError, Fetcher};
use super::keys::{self, Key, Keys, Read};

/// How often a token with an unknown `kid` may make the keys reload: often
/// enough that a key published a moment ago works on its first use, rarely
/// enough that made-up `kid`s cannot turn into a flood of fetches.
pub const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(10);

/// Where a JWKS document comes from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    File(PathBuf),
    Url(Uri),
}

impl JwksSource {
    /// An `http://` or `https://` URL, or else a file path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("http://") || text.starts_with("https://") {
            return text
                .parse::<Uri>()
                .map(Self::Url)
                .map_err(|e| format!("not a URL: {e}"));
        }
        Ok(Self::File(PathBuf::from(text)))
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(uri) => write!(f, "{uri}"),
        }
    }
}

/// The key sources a deployment configured.
#[derive(Clone, Debug, Default)]
pub struct KeySources {
    pub pem_dir: Option<PathBuf>,
    pub jwks: Option<JwksSource>,
}

/// Keys could not be read at start: the service does not start.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    pub message: String,
    /// The source may be readable later (a JWKS server that is down).
    pub transient: bool,
}

#[derive(Default)]
struct Current {
    pem: Keys,
    jwks: Keys,
}

pub struct KeyRing {
    sources: KeySources,
    fetcher: Option<Fetcher>,
    current: RwLock<Arc<Current>>,
    /// When an unknown `kid` last caused a reload; the lock also makes
    /// concurrent callers with the same new `kid` share one reload.
    unknown_kid_reload: Mutex<Option<Instant>>,
}

impl KeyRing {
    /// No `kid`-named keys: tokens are verified with the HS256 secret alone.
    pub fn empty() -> Self {
        Self {
            sources: KeySources::default(),
            fetcher: None,
            current: RwLock::default(),
            unknown_kid_reload: Mutex::new(None),
        }
    }

    /// Reads every source once; any failure is the caller's to report.
    pub async fn load(sources: KeySources) -> Result<Self, KeyError> {
        let fetcher = match &sources.jwks {
            Some(JwksSource::Url(uri)) => Some(Fetcher::new(uri).map_err(|e| jwks_error(uri, e))?),
            _ => None,
        };
        let ring = Self {
            sources,
            fetcher,
            ..Self::empty()
        };
        let pem = match ring.read_pem(&Keys::new()).await {
            Some(Ok(read)) if read.skipped.is_empty() => read.keys,
            Some(Ok(read)) => {
                return Err(permanent(format!(
                    "OSMIUM_JWT_PUBLIC_KEYS: {}",
                    read.skipped.join("; ")
                )))
            }
            Some(Err(e)) => return Err(permanent(format!("OSMIUM_JWT_PUBLIC_KEYS {e}"))),
            None => Keys::new(),
        };
        let jwks = match ring.read_jwks().await {
            Some(Ok(read)) => {
                log_skipped(&read);
                read.keys
            }
            Some(Err(e)) => return Err(e),
            None => Keys::new(),
        };
        *ring.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Current { pem, jwks });
        Ok(ring)
    }

    /// Whether any source of `kid`-named keys is configured.
    pub fn configured(&self) -> bool {
        self.sources.pem_dir.is_some() || self.sources.jwks.is_some()
    }

    /// The key named `kid`; a PEM file wins over a JWKS entry of the same name.
    pub fn get(&self, kid: &str) -> Option<Arc<Key>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        current
            .pem
            .get(kid)
            .or_else(|| current.jwks.get(kid))
            .cloned()
    }

    /// `kid` after a reload, if none happened for an unknown `kid` within
    /// [`UNKNOWN_KID_RELOAD`].
    pub async fn get_after_reload(&self, kid: &str) -> Option<Arc<Key>> {
        if !self.configured() {
            return None;
        }
        let mut last = self.unknown_kid_reload.lock().await;
        // Another caller may have reloaded while this one waited.
        if let Some(key) = self.get(kid) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD) {
            return None;
        }
        *last = Some(Instant::now());
        self.reload().await;
        self.get(kid)
    }

    /// Re-reads every source; one that fails keeps its previous keys.
    pub async fn reload(&self) {
        let previous = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let pem = match self.read_pem(&previous.pem).await {
            Some(Ok(read)) => {
                log_skipped(&read);
                read.keys
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "OSMIUM_JWT_PUBLIC_KEYS cannot be read; keeping its last keys");
                previous.pem.clone()
            }
            None => Keys::new(),
        };
        let jwks = match self.read_jwks().await {
            Some(Ok(read)) => {
                log_skipped(&read);
                read.keys
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "keeping the last good JWKS");
                previous.jwks.clone()
            }
            None => Keys::new(),
        };
        let changed = !same_kids(&pem, &previous.pem) || !same_kids(&jwks, &previous.jwks);
        if changed {
            let mut kids: Vec<&str> = pem.keys().chain(jwks.keys()).map(String::as_str).collect();
            kids.sort_unstable();
            tracing::info!(?kids, "token keys reloaded");
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Current { pem, jwks });
    }

    async fn read_pem(&self, previous: &Keys) -> Option<Result<Read, String>> {
        let dir = self.sources.pem_dir.clone()?;
        let previous = previous.clone();
        Some(
            tokio::task::spawn_blocking(move || keys::read_pem_dir(&dir, &previous))
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
        )
    }

    async fn read_jwks(&self) -> Option<Result<Read, KeyError>> {
        let source = self.sources.jwks.as_ref()?;
        let read = match source {
            JwksSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                    .map_err(|e| KeyError {
                        message: format!("OSMIUM_JWT_JWKS {source}: {e}"),
                        transient: false,
                    })
            }
            JwksSource::Url(uri) => match &self.fetcher {
                Some(fetcher) => fetcher
                    .get(uri)
                    .await
                    .map(|body| body.to_vec())
                    .map_err(|e| jwks_error(uri, e)),
                None => Err(permanent(format!("OSMIUM_JWT_JWKS {uri}: no client"))),
            },
        };
        Some(read.and_then(|json| {
            keys::parse_jwks(&json).map_err(|e| permanent(format!("OSMIUM_JWT_JWKS {source}: {e}")))
        }))
    }
}

/// Reloads `ring` every `every` until `stopping` turns true.
pub async fn reload_periodically(
    ring: Arc<KeyRing>,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    if !ring.configured() {
        return;
    }
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the keys were just read.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        ring.reload().await;
    }
}

fn same_kids(a: &Keys, b: &Keys) -> bool {
    a.len() == b.len() && a.keys().all(|kid| b.contains_key(kid))
}

fn log_skipped(read: &Read) {
    for skipped in &read.skipped {
        tracing::warn!(%skipped, "a token key was skipped");
    }
}

fn permanent(message: String) -> KeyError {
    KeyError {
        message,
        transient: false,
    }
}

fn jwks_error(uri: &Uri, error: FetchError) -> KeyError {
    KeyError {
        message: format!("OSMIUM_JWT_JWKS {uri}: {}", error.message),
        transient: error.transient,
    }
}
