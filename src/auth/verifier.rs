//! Token verification: the key a token names (or the HS256 secret), then its
//! signature, `exp`, `nbf`, `aud` (a string or an array) and, when one is
//! configured, `iss`.

use std::sync::Arc;

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
}

pub struct Verifier {
    /// HS256, for tokens without a `kid` (or with one, when no `kid`-named
    /// keys are configured).
    secret: Option<Arc<Key>>,
    keys: Arc<KeyRing>,
    /// Every check but the algorithm, which comes from the key.
    validation: Validation,
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
        Ok(Caller {
            user,
            role: if claims.role.as_deref() == Some(SERVICE_ROLE) {
                Role::Service
            } else {
                Role::User
            },
            name: claims.name.filter(|n| !n.trim().is_empty()),
        })
    }
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
