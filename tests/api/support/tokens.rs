//! Tokens as other services would sign them: Ed25519 keys named by `kid`,
//! published as PEM files or JWKS documents, and claims chosen per test.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{AUDIENCE, SECRET};

/// An Ed25519 signing key and the `kid` its tokens name.
pub struct Signer {
    pub kid: String,
    pair: rcgen::KeyPair,
}

impl Signer {
    pub fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an ed25519 key"),
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ed_pem(self.pair.serialize_pem().as_bytes()).expect("pkcs8 key")
    }

    pub fn public_pem(&self) -> String {
        self.pair.public_key_pem()
    }

    /// The public key as a JWKS entry.
    pub fn jwk(&self) -> Jwk {
        // DecodingKey::from_ed_der takes the raw 32-byte public key.
        let public = jsonwebtoken::DecodingKey::from_ed_der(self.pair.public_key_raw());
        let mut jwk = Jwk::from_decoding_key(&public, Some(Algorithm::EdDSA)).expect("a jwk");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A token for `user` with `kid`, valid for an hour.
    pub fn token(&self, user: u64) -> String {
        self.sign(&claims(user))
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("signs")
    }
}

/// A JWKS document of `signers`' public keys.
pub fn jwks(signers: &[&Signer]) -> String {
    let set = JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    };
    serde_json::to_string(&set).expect("serialises")
}

pub fn now() -> u64 {
    osmium_chat::model::clock::now_ms() / 1000
}

/// Valid claims for `user`, for an hour, for this service.
pub fn claims(user: u64) -> Value {
    json!({"sub": user.to_string(), "exp": now() + 3600, "aud": AUDIENCE})
}

/// `claims` signed with the tests' HS256 secret.
pub fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

/// A fresh directory for key files, removed by the caller.
pub fn key_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "osmium-keys-{}-{}",
        std::process::id(),
        crate::helpers::next_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
