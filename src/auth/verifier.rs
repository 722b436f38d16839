//! Token verification: the key a token names (or the HS256 secret), then its
//! signature, `exp`, `nbf`, `aud` (a string or an array) and, when one is
//! configured, `iss`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Validation;
use serde::Deserialize;

use super::keyring::KeyRing;
use super::keys::Key;
use super::{Caller, Role, SERVICE_ROLE};
use crate::model::UserId;

/// What the service reads from a token; `exp`, `nbf`, `aud` and `iss` are
/// checked by the library from the raw claims.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// Checked by the library; read here only to bound the cache. A float
    /// as well, since the library accepts one.
    #[serde(default)]
    exp: Option<f64>,
}

/// Tokens verified at most this many at once: a client sends the same token
/// on every call until it is renewed, so a small cache answers nearly all.
const VERIFIED_CAPACITY: usize = 4096;

/// A token that verified, with what it verified against.
struct Verified {
    caller: Caller,
    kid: Option<String>,
    key: Arc<Key>,
    /// Seconds since the epoch; the cached answer ends here, without the
    /// library's leeway (a full verification applies that).
    exp: f64,
}

pub struct Verifier {
    /// HS256, for tokens without a `kid` (or with one, when no `kid`-named
    /// keys are configured).
    secret: Option<Arc<Key>>,
    keys: Arc<KeyRing>,
    /// Every check but the algorithm, which comes from the key.
    validation: Validation,
    /// Parsing a token and checking its HMAC or signature took a few percent
    /// of a read call's CPU, for the same token call after call.
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

impl Verifier {
    pub fn new(
        secret: Option<&[u8]>,
        keys: Arc<KeyRing>,
        audience: &str,
        issuer: Option<&str>,
    ) -> Self {
        let mut validation = Validation::default();
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Self {
            secret: secret.map(|s| Arc::new(Key::hs256(s))),
            keys,
            validation,
            verified: Mutex::default(),
        }
    }

    /// The HS256 secret alone, for tests and the `token` round trip.
    pub fn hs256(secret: &[u8], audience: &str) -> Self {
        Self::new(Some(secret), Arc::new(KeyRing::empty()), audience, None)
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, String> {
        let now = now_secs();
        if let Some(caller) = self.cached(token, now) {
            return Ok(caller);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("malformed token: {}", refusal(&e)))?;
        let key = match &header.kid {
            Some(kid) if self.keys.configured() => match self.keys.get(kid) {
                Some(key) => key,
                None => self
                    .keys
                    .get_after_reload(kid)
                    .await
                    .ok_or_else(|| format!("unknown key id {kid:?}"))?,
            },
            Some(kid) => self
                .secret
                .clone()
                .ok_or_else(|| format!("unknown key id {kid:?}"))?,
            None => self.secret.clone().ok_or("token has no key id")?,
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.algorithm];
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| format!("invalid token: {}", refusal(&e)))?
            .claims;
        let user = claims
            .sub
            .parse::<u64>()
            .ok()
            .filter(|id| *id != 0)
            .map(UserId)
            .ok_or("sub is not a user id")?;
        let caller = Caller {
            user,
            role: if claims.role.as_deref() == Some(SERVICE_ROLE) {
                Role::Service
            } else {
                Role::User
            },
            name: claims.name.filter(|n| !n.trim().is_empty()),
        };
        if let Some(exp) = claims.exp.filter(|exp| *exp > now) {
            self.remember(
                token,
                now,
                Verified {
                    caller: caller.clone(),
                    kid: header.kid,
                    key,
                    exp,
                },
            );
        }
        Ok(caller)
    }

    /// The caller of a token verified before, while it has not expired and
    /// the key it verified against is still the one its `kid` names: a key
    /// removed or replaced by a reload refuses its tokens as before.
    fn cached(&self, token: &str, now: f64) -> Option<Caller> {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = verified.get(token)?;
        if hit.exp <= now {
            return None;
        }
        let current = match &hit.kid {
            Some(kid) if self.keys.configured() => self.keys.get(kid)?,
            _ => self.secret.clone()?,
        };
        Arc::ptr_eq(&current, &hit.key).then(|| hit.caller.clone())
    }

    fn remember(&self, token: &str, now: f64, entry: Verified) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, v| v.exp > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(token.into(), entry);
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Why a token was refused, in words a caller can act on (the library's
/// own texts are internal names such as `InvalidToken`).
fn refusal(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "not a JWT (three base64url parts separated by dots)".into()
        }
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
            "its header or claims are not the expected JSON (sub, exp and aud)".into()
        }
        ErrorKind::InvalidSignature => "the signature does not match the configured key".into(),
        ErrorKind::ExpiredSignature => "it has expired (exp is in the past)".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidAudience => "its aud is not this service's audience".into(),
        ErrorKind::InvalidIssuer => "its iss is not the issuer this service trusts".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it lacks the {claim} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "it is signed with another algorithm than its key's".into()
        }
        _ => "it cannot be verified".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of enough bytes for HS256";

    #[tokio::test]
    async fn a_verified_token_is_answered_from_the_cache_only_until_it_expires() {
        let verifier = Verifier::hs256(SECRET, "chat");
        let token = super::super::issue(SECRET, "chat", 7, None, false, 3600).expect("issued");
        let caller = verifier.verify(&token).await.expect("verified");
        assert_eq!(caller.user, UserId(7));
        let now = now_secs();
        let cached = verifier.cached(&token, now).expect("cached");
        assert_eq!(cached.user, UserId(7));
        assert!(verifier.cached(&token, now + 3601.0).is_none());
        assert!(verifier.cached("another token", now).is_none());
    }

    #[tokio::test]
    async fn a_refused_token_is_not_cached() {
        let verifier = Verifier::hs256(SECRET, "chat");
        let token = super::super::issue(
            b"another secret of enough bytes",
            "chat",
            7,
            None,
            false,
            3600,
        )
        .expect("issued");
        assert!(verifier.verify(&token).await.is_err());
        assert!(verifier.cached(&token, now_secs()).is_none());
    }
}
