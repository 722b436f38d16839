//! Who is calling: `authorization: Bearer <JWT>` becomes a [`Caller`] in the
//! request's extensions, or the call ends with UNAUTHENTICATED before any
//! handler runs. Keys are the HS256 secret and public keys chosen by the
//! token's `kid` ([`keyring`]), which rotate while the service runs.

mod fetch;
pub mod keyring;
mod keys;
mod layer;
mod verifier;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::model::UserId;

pub use keyring::{reload_periodically, JwksSource, KeyError, KeyRing, KeySources};
pub use layer::Authenticate;
pub use verifier::Verifier;

/// The development secret, used only when no key is configured and the
/// service listens on loopback. Public by design: it protects nothing but a
/// developer's own machine.
pub const DEV_SECRET: &str = "osmium-chat-development-secret-for-loopback-only";

/// The shortest HS256 secret accepted: the hash's own size (RFC 7518, 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

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

#[derive(Serialize)]
struct Issued<'a> {
    sub: String,
    exp: u64,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
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
    let claims = Issued {
        sub: user.to_string(),
        exp: crate::model::clock::now_ms() / 1000 + ttl_secs,
        aud: audience,
        role: service.then_some(SERVICE_ROLE),
        name,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-secret-of-thirty-two-bytes-at-least";

    fn sign(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signs")
    }

    fn now() -> u64 {
        crate::model::clock::now_ms() / 1000
    }

    #[tokio::test]
    async fn a_token_round_trips_with_its_claims() {
        let token = issue(SECRET, "aud", 42, Some("Ann"), true, 60).expect("signs");
        let caller = Verifier::hs256(SECRET, "aud")
            .verify(&token)
            .await
            .expect("verifies");
        assert_eq!(caller.user, UserId(42));
        assert_eq!(caller.role, Role::Service);
        assert_eq!(caller.name.as_deref(), Some("Ann"));
    }

    #[tokio::test]
    async fn wrong_secret_audience_expiry_or_start_is_refused() {
        let token = issue(SECRET, "aud", 42, None, false, 60).expect("signs");
        let other = b"another-secret-of-thirty-two-bytes!!";
        assert!(Verifier::hs256(other, "aud").verify(&token).await.is_err());
        assert!(Verifier::hs256(SECRET, "other")
            .verify(&token)
            .await
            .is_err());
        let verifier = Verifier::hs256(SECRET, "aud");
        let expired = sign(&serde_json::json!({"sub": "42", "exp": 1, "aud": "aud"}));
        assert!(verifier.verify(&expired).await.is_err());
        let early = sign(&serde_json::json!({
            "sub": "42", "exp": now() + 7200, "nbf": now() + 3600, "aud": "aud"
        }));
        let refused = verifier.verify(&early).await.err().unwrap_or_default();
        assert!(refused.contains("nbf"), "{refused}");
    }

    #[tokio::test]
    async fn aud_may_be_an_array_and_iss_is_checked_when_required() {
        let keys = std::sync::Arc::new(KeyRing::empty());
        let verifier = Verifier::new(Some(SECRET), keys, "aud", Some("https://auth"));
        let token = |iss: Option<&str>| {
            let mut claims =
                serde_json::json!({"sub": "42", "exp": now() + 60, "aud": ["other", "aud"]});
            if let Some(iss) = iss {
                claims["iss"] = iss.into();
            }
            sign(&claims)
        };
        verifier
            .verify(&token(Some("https://auth")))
            .await
            .expect("aud array with ours, the right iss");
        let wrong = verifier.verify(&token(Some("https://evil"))).await;
        assert!(wrong.err().unwrap_or_default().contains("iss"));
        let missing = verifier.verify(&token(None)).await;
        assert!(missing.err().unwrap_or_default().contains("iss"));
    }

    #[tokio::test]
    async fn refusals_are_explained_in_words() {
        let token = issue(SECRET, "aud", 42, None, false, 60).expect("signs");
        let other = b"another-secret-of-thirty-two-bytes!!";
        let wrong_key = Verifier::hs256(other, "aud").verify(&token).await;
        assert_eq!(
            wrong_key.err().as_deref(),
            Some("invalid token: the signature does not match the configured key")
        );
        let garbage = Verifier::hs256(SECRET, "aud").verify("not-a-token").await;
        let garbage = garbage.err().unwrap_or_default();
        assert!(garbage.contains("not a JWT"), "{garbage}");
        assert!(!garbage.contains("InvalidToken"), "{garbage}");
    }
}
