//! Who is calling: `authorization: Bearer <JWT>` becomes a [`Caller`] in the
//! request's extensions. Keys are looked up by the token's `kid` (falling
//! back to the default key), so RS256/EdDSA keys can be added and rotated
//! here without touching a handler.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::model::UserId;

/// The development secret used when none is configured in embedded mode.
/// Public by design: it protects nothing but a developer's own machine.
pub const DEV_SECRET: &str = "osmium-chat-development-secret";

/// The `role` claim that may call `UserDirectory`.
pub const SERVICE_ROLE: &str = "service";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Service,
}

/// The verified identity of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
    /// From the `name` claim: registers the user on first use.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// Verification keys: an optional default and any number selected by `kid`.
pub struct Verifier {
    default_key: Option<(Algorithm, DecodingKey)>,
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    audience: String,
}

impl Verifier {
    /// No keys yet: add them with the `with_*` methods.
    pub fn new(audience: &str) -> Self {
        Self {
            default_key: None,
            by_kid: HashMap::new(),
            audience: audience.to_owned(),
        }
    }

    pub fn hs256(secret: &[u8], audience: &str) -> Self {
        Self::new(audience).with_secret(secret)
    }

    /// The HS256 secret, used for tokens without a `kid`.
    pub fn with_secret(mut self, secret: &[u8]) -> Self {
        self.default_key = Some((Algorithm::HS256, DecodingKey::from_secret(secret)));
        self
    }

    /// A public key in PEM: Ed25519 (EdDSA) or RSA (RS256), selected by `kid`.
    pub fn with_public_key_pem(self, kid: &str, pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(self.with_key(kid, Algorithm::EdDSA, key));
        }
        match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(self.with_key(kid, Algorithm::RS256, key)),
            Err(e) => Err(format!("neither an Ed25519 nor an RSA public key: {e}")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.default_key.is_none() && self.by_kid.is_empty()
    }

    /// Adds a key that tokens select with their `kid` header.
    pub fn with_key(mut self, kid: &str, algorithm: Algorithm, key: DecodingKey) -> Self {
        self.by_kid.insert(kid.to_owned(), (algorithm, key));
        self
    }

    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("malformed token: {}", refusal(&e)))?;
        let (algorithm, key) = match &header.kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .or(self.default_key.as_ref().filter(|_| self.by_kid.is_empty()))
                .ok_or_else(|| format!("unknown key id {kid:?}"))?,
            None => self.default_key.as_ref().ok_or("token has no key id")?,
        };
        let mut validation = Validation::new(*algorithm);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
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
        ErrorKind::MissingRequiredClaim(claim) => format!("it lacks the {claim} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "it is signed with another algorithm than its key's".into()
        }
        _ => "it cannot be verified".into(),
    }
}

/// Signs an HS256 token, for `osmium-chat token` and for tests.
pub fn issue(
    secret: &[u8],
    audience: &str,
    user: u64,
    name: Option<&str>,
    service: bool,
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: user.to_string(),
        exp: crate::model::clock::now_ms() / 1000 + ttl_secs,
        aud: audience.to_owned(),
        role: service.then(|| SERVICE_ROLE.to_owned()),
        name: name.map(str::to_owned),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Puts the [`Caller`] into every request, or refuses it as unauthenticated.
#[derive(Clone)]
pub struct Authenticate(pub Arc<Verifier>);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization metadata"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let caller = self
            .0
            .verify(token.trim())
            .map_err(Status::unauthenticated)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_with_its_claims() {
        let token = issue(b"s", "aud", 42, Some("Ann"), true, 60).expect("signs");
        let caller = Verifier::hs256(b"s", "aud")
            .verify(&token)
            .expect("verifies");
        assert_eq!(caller.user, UserId(42));
        assert_eq!(caller.role, Role::Service);
        assert_eq!(caller.name.as_deref(), Some("Ann"));
    }

    #[test]
    fn wrong_secret_audience_or_expiry_is_refused() {
        let token = issue(b"s", "aud", 42, None, false, 60).expect("signs");
        assert!(Verifier::hs256(b"other", "aud").verify(&token).is_err());
        assert!(Verifier::hs256(b"s", "other").verify(&token).is_err());
        let claims = Claims {
            sub: "42".into(),
            exp: 1,
            aud: "aud".into(),
            role: None,
            name: None,
        };
        let expired =
            jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"s"))
                .expect("signs");
        assert!(Verifier::hs256(b"s", "aud").verify(&expired).is_err());
    }

    #[test]
    fn refusals_are_explained_in_words() {
        let token = issue(b"s", "aud", 42, None, false, 60).expect("signs");
        let wrong_key = Verifier::hs256(b"other", "aud").verify(&token);
        assert_eq!(
            wrong_key.err().as_deref(),
            Some("invalid token: the signature does not match the configured key")
        );
        let garbage = Verifier::hs256(b"s", "aud").verify("not-a-token");
        let garbage = garbage.err().unwrap_or_default();
        assert!(garbage.contains("not a JWT"), "{garbage}");
        assert!(!garbage.contains("InvalidToken"), "{garbage}");
    }
}
