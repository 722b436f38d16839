//! Verification keys and where they are read from: the HS256 secret, PEM
//! files named `<kid>.pem`, and JWKS documents. Each key carries the one
//! algorithm tokens may use with it, so a token cannot pick a weaker one
//! (an RSA public key presented as an HMAC secret, say).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A key and the algorithm it verifies.
pub struct Key {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// Keys by `kid`.
pub type Keys = HashMap<String, Arc<Key>>;

impl Key {
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// A public key in PEM: Ed25519 (EdDSA) or RSA (RS256).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self {
                algorithm: Algorithm::EdDSA,
                key,
            });
        }
        match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => Ok(Self {
                algorithm: Algorithm::RS256,
                key,
            }),
            Err(e) => Err(format!("neither an Ed25519 nor an RSA public key: {e}")),
        }
    }

    /// A public key of a JWKS. Its `alg` when given, else the usual one for
    /// its type; symmetric keys are refused, since a published document is
    /// no place for a secret.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        let implied = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(format!("curve {:?} is not supported", ec.curve)),
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err("a symmetric key (kty oct) is never taken from a JWKS".into())
            }
            _ => return Err("an unsupported key type".into()),
        };
        let algorithm = match jwk.common.key_algorithm {
            Some(alg) => {
                Algorithm::try_from(alg).map_err(|_| format!("alg {alg} is not supported"))?
            }
            None => implied,
        };
        if matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(format!("alg {algorithm:?} is symmetric"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
        Ok(Self { algorithm, key })
    }
}

/// What a key source yielded: its keys, and the entries it skipped, each
/// with why (logged on a reload, fatal at start).
pub struct Read {
    pub keys: Keys,
    pub skipped: Vec<String>,
}

/// Every `<kid>.pem` in `dir`. A file that cannot be read or parsed keeps the
/// key `previous` had under its kid, so a half-written file during a rotation
/// does not drop a key that still signs tokens.
pub fn read_pem_dir(dir: &Path, previous: &Keys) -> Result<Read, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut read = Read {
        keys: Keys::new(),
        skipped: Vec::new(),
    };
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let Some(kid) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        // Kubernetes' ConfigMap volumes keep their data under `..data`.
        if kid.starts_with('.') || path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| Key::from_pem(&pem));
        match parsed {
            Ok(key) => {
                read.keys.insert(kid.to_owned(), Arc::new(key));
            }
            Err(why) => {
                read.skipped.push(format!("{}: {why}", path.display()));
                if let Some(key) = previous.get(kid) {
                    read.keys.insert(kid.to_owned(), key.clone());
                }
            }
        }
    }
    Ok(read)
}

/// The signing keys of a JWKS document (RFC 7517). Keys without a `kid`, or
/// marked for encryption, are skipped; a document without one usable key is
/// an error, so that a broken refresh cannot empty the set.
pub fn parse_jwks(json: &[u8]) -> Result<Read, String> {
    let set: JwkSet =
        serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut read = Read {
        keys: Keys::new(),
        skipped: Vec::new(),
    };
    for (i, jwk) in set.keys.iter().enumerate() {
        let Some(kid) = &jwk.common.key_id else {
            read.skipped.push(format!("keys[{i}]: no kid"));
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            read.skipped.push(format!("keys[{i}] ({kid}): use is enc"));
            continue;
        }
        match Key::from_jwk(jwk) {
            Ok(key) => {
                read.keys.insert(kid.clone(), Arc::new(key));
            }
            Err(why) => read.skipped.push(format!("keys[{i}] ({kid}): {why}")),
        }
    }
    if read.keys.is_empty() {
        let why = match read.skipped.is_empty() {
            true => String::new(),
            false => format!(" ({})", read.skipped.join("; ")),
        };
        return Err(format!("no usable signing key{why}"));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_yields_its_signing_keys_by_kid_and_skips_the_rest() {
        let json = br#"{"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let read = parse_jwks(json).expect("parses");
        assert_eq!(read.keys.len(), 1);
        assert_eq!(read.keys["ed"].algorithm, Algorithm::EdDSA);
        assert_eq!(read.skipped.len(), 3, "{:?}", read.skipped);
    }

    #[test]
    fn a_jwks_without_a_usable_key_is_an_error() {
        assert!(parse_jwks(br#"{"keys": []}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
        let only_secret = br#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#;
        let refused = parse_jwks(only_secret).err().unwrap_or_default();
        assert!(refused.contains("symmetric"), "{refused}");
    }
}
