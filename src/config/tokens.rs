//! Which token keys the settings select, and the rules that keep a public
//! or guessable key away from anything but a developer's own machine.

use crate::auth::{JwksSource, KeySources, DEV_SECRET, MIN_SECRET_BYTES};

use super::{ConfigError, Secret, Settings};

impl Settings {
    /// Whether gRPC is served on loopback only, where the development secret
    /// reaches no one but the developer.
    pub fn on_loopback(&self) -> bool {
        self.listen_addr.ip().is_loopback()
    }

    /// The HS256 secret: the configured one, if it is 32 bytes or more (and
    /// not the published development secret, off loopback); none when only
    /// public keys are configured; with no key at all, the development
    /// secret, on loopback and in the embedded mode only.
    pub fn jwt_secret(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            let bytes = secret.expose().len();
            if bytes == 0 {
                return Err(ConfigError(
                    "OSMIUM_JWT_SECRET is empty: set a random secret of 32 bytes or more (e.g. `openssl rand -base64 48`), or unset it".into(),
                ));
            }
            if bytes < MIN_SECRET_BYTES {
                return Err(ConfigError(format!(
                    "OSMIUM_JWT_SECRET has {bytes} bytes: an HS256 secret needs {MIN_SECRET_BYTES} or more (e.g. `openssl rand -base64 48`)"
                )));
            }
            if secret.expose() == DEV_SECRET && !self.on_loopback() {
                return Err(ConfigError(format!(
                    "OSMIUM_JWT_SECRET is the published development secret, and gRPC listens on {} (not loopback): set a secret of your own",
                    self.listen_addr
                )));
            }
            return Ok(Some(secret.clone()));
        }
        if self.jwt_public_keys.is_some() || self.jwt_jwks.is_some() {
            return Ok(None);
        }
        if !self.on_loopback() {
            return Err(ConfigError(format!(
                "gRPC listens on {} (not loopback), and no token key is configured: set OSMIUM_JWT_SECRET (32 bytes or more), OSMIUM_JWT_PUBLIC_KEYS or OSMIUM_JWT_JWKS; the development secret is used on loopback (127.0.0.1, ::1) only",
                self.listen_addr
            )));
        }
        if self.database_url.is_some() {
            return Err(ConfigError(
                "OSMIUM_JWT_SECRET, OSMIUM_JWT_PUBLIC_KEYS or OSMIUM_JWT_JWKS must be set when DATABASE_URL is: the development secret is for the embedded mode only".into(),
            ));
        }
        Ok(Some(Secret::new(DEV_SECRET)))
    }

    /// Whether tokens are checked against the development secret.
    pub fn uses_dev_secret(&self) -> bool {
        self.jwt_secret.is_none() && self.jwt_public_keys.is_none() && self.jwt_jwks.is_none()
    }

    /// The sources of `kid`-named keys.
    pub fn key_sources(&self) -> Result<KeySources, ConfigError> {
        let jwks = match self.jwt_jwks.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                JwksSource::parse(text)
                    .map_err(|e| ConfigError(format!("OSMIUM_JWT_JWKS {text:?}: {e}")))?,
            ),
        };
        Ok(KeySources {
            pem_dir: self.jwt_public_keys.clone(),
            jwks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(settings: &Settings) -> String {
        settings.jwt_secret().err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn the_development_secret_serves_loopback_only() {
        let local = Settings::default();
        assert_eq!(
            local
                .jwt_secret()
                .ok()
                .flatten()
                .map(|s| s.expose().to_owned()),
            Some(DEV_SECRET.to_owned())
        );
        let public = Settings {
            listen_addr: "0.0.0.0:50051".parse().expect("an address"),
            ..Settings::default()
        };
        let refused = refusal(&public);
        assert!(refused.contains("OSMIUM_JWT_SECRET"), "{refused}");
        assert!(refused.contains("0.0.0.0:50051"), "{refused}");
        let configured_dev = Settings {
            jwt_secret: Some(Secret::new(DEV_SECRET)),
            ..public
        };
        assert!(refusal(&configured_dev).contains("development secret"));
    }

    #[test]
    fn empty_and_short_secrets_are_refused() {
        for (secret, says) in [
            ("", "empty"),
            ("0123456789abcdef0123456789abcde", "31 bytes"),
        ] {
            let settings = Settings {
                jwt_secret: Some(Secret::new(secret)),
                ..Settings::default()
            };
            assert!(refusal(&settings).contains(says), "{secret:?}");
        }
        let enough = Settings {
            jwt_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            ..Settings::default()
        };
        assert!(enough.jwt_secret().is_ok());
    }
}
