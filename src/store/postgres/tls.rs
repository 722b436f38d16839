//! TLS to Postgres as libpq's `sslmode` and `sslrootcert` ask for it in
//! `DATABASE_URL`.
//!
//! tokio-postgres understands `sslmode` only as disable, prefer or require
//! and knows no `sslrootcert`, so both are taken out of the URL here, the
//! rest is left to tokio-postgres, and the mode becomes a rustls verifier:
//! - `disable`: plaintext.
//! - `prefer` (the default, as in libpq): TLS when the server offers it,
//!   plaintext when it does not; the certificate is not checked.
//! - `require`: TLS or no connection; the certificate is not checked,
//!   unless `sslrootcert` names a CA file: then, as in libpq, its chain is.
//! - `verify-ca`: TLS with a certificate chaining to `sslrootcert`.
//! - `verify-full`: that, and the certificate must name the host.
//!
//! `sslrootcert` is a PEM file, or `system` for the operating system's
//! trust store (verify-full only, as in libpq). There is no default file:
//! libpq's `~/.postgresql/root.crt` means nothing in a container, so the
//! verifying modes without `sslrootcert` are refused.
//!
//! As in libpq, `PGSSLMODE` and `PGSSLROOTCERT` ([`TlsDefaults`]) apply
//! when the URL does not say, so a deployment can mount a CA and name it
//! without editing the URL in its Secret.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::ClientConfig;
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::{provider, roots_from_file, system_roots, Relaxed};

/// libpq's `sslmode` values, `allow` aside (tokio-postgres cannot fall back
/// that way round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const MODES: &str = "use disable, prefer, require, verify-ca or verify-full";

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(format!("sslmode={other} is not supported: {MODES}")),
        })
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    System,
}

/// What applies when the URL names no `sslmode` or `sslrootcert`.
#[derive(Clone, Debug, Default)]
pub struct TlsDefaults {
    pub mode: Option<String>,
    pub root_cert: Option<String>,
}

/// A parsed `DATABASE_URL`: what tokio-postgres connects with, and the TLS
/// it must speak.
pub struct PgUrl {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl PgUrl {
    /// Parses the URL or key=value string; errors say why without
    /// repeating it (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        Self::parse_with(url, &TlsDefaults::default())
    }

    /// [`PgUrl::parse`], with `defaults` for what the URL does not say.
    pub fn parse_with(url: &str, defaults: &TlsDefaults) -> Result<Self, String> {
        let (rest, mode, root_cert) = take_tls_params(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            format!(
                "not a Postgres URL (postgres://user:password@host:5432/database): {}",
                crate::telemetry::error_chain(&e)
            )
        })?;
        let mode = mode.or_else(|| defaults.mode.clone());
        let root_cert = root_cert.or_else(|| defaults.root_cert.clone());
        let mode = mode.map_or(Ok(SslMode::Prefer), |m| SslMode::parse(&m))?;
        let root_cert = root_cert.map(|path| match path.as_str() {
            "system" => RootCert::System,
            _ => RootCert::File(path.into()),
        });
        match (mode, &root_cert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(
                    "the verifying sslmodes need sslrootcert=<CA file> (or sslrootcert=system with verify-full)"
                        .into(),
                )
            }
            (SslMode::VerifyFull, Some(RootCert::System)) | (_, Some(RootCert::File(_)) | None) => {}
            (_, Some(RootCert::System)) => {
                return Err("sslrootcert=system needs sslmode=verify-full".into())
            }
        }
        config.ssl_mode(match mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        });
        Ok(Self {
            config,
            mode,
            root_cert,
        })
    }

    /// The connector for this URL's mode, its CA file read now so that a
    /// missing or broken one stops the start rather than every connection.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = provider();
        let roots = match &self.root_cert {
            None => None,
            Some(RootCert::File(path)) => Some(roots_from_file(path)?),
            Some(RootCert::System) => Some(system_roots()?),
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = match (self.mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
            (SslMode::Disable, _) | (_, None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed::unverified(
                    provider.signature_verification_algorithms,
                ))),
            (_, Some(roots)) => {
                let algorithms = provider.signature_verification_algorithms;
                let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| e.to_string())?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Relaxed::chain_only(
                        chain, algorithms,
                    )))
            }
        }
        .with_no_client_auth();
        // What libpq sends, and what Postgres 17 requires of sslnegotiation=direct.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The URL without `sslmode` and `sslrootcert`, and their values.
type Taken = (String, Option<String>, Option<String>);

fn take_tls_params(url: &str) -> Result<Taken, String> {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&percent_decode(key)?, percent_decode(value)?) {
                kept.push(pair);
            }
        }
        match kept.is_empty() {
            true => base.to_owned(),
            false => format!("{base}?{}", kept.join("&")),
        }
    } else {
        let mut rest = String::new();
        for (key, value, raw) in key_values(url)? {
            if !take(key, value) {
                rest.push_str(raw);
                rest.push(' ');
            }
        }
        rest
    };
    Ok((rest, mode, root))
}

/// The `key=value` pairs of libpq's keyword form: each key, its unquoted
/// value, and the pair as written.
fn key_values(text: &str) -> Result<Vec<(&str, String, &str)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let equals = rest.find('=').ok_or("a keyword without a value")?;
        let key = rest.get(..equals).unwrap_or_default().trim_end();
        rest = rest.get(equals + 1..).unwrap_or_default().trim_start();
        let quoted = rest.starts_with('\'');
        let mut value = String::new();
        let mut chars = rest.char_indices().skip(usize::from(quoted));
        let mut end = rest.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    end = at + 1;
                    break;
                }
                c if c.is_whitespace() && !quoted => {
                    end = at;
                    break;
                }
                c => value.push(c),
            }
        }
        let used = start.len() - rest.len() + end;
        pairs.push((key, value, start.get(..used).unwrap_or_default()));
        rest = rest.get(end..).unwrap_or_default().trim_start();
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'%' {
            bytes.push(byte);
            continue;
        }
        let hex = rest.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        bytes.push(decoded.ok_or("a bad %-escape in a URL parameter")?);
        rest = rest.get(2..).unwrap_or_default();
    }
    String::from_utf8(bytes).map_err(|_| "a URL parameter that is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> PgUrl {
        PgUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn prefer_is_the_default_as_in_libpq() {
        let url = parsed("postgres://app@db/app");
        assert_eq!(url.mode, SslMode::Prefer);
        assert_eq!(url.config.get_ssl_mode(), WireMode::Prefer);
    }

    #[test]
    fn verifying_modes_are_taken_out_of_the_url_and_the_rest_kept() {
        let url = parsed(
            "postgres://app@db:5433/app?sslmode=verify-full&options=-csearch_path%3Dx&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(url.mode, SslMode::VerifyFull);
        assert_eq!(url.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(url.config.get_ssl_mode(), WireMode::Require);
        assert_eq!(url.config.get_options(), Some("-csearch_path=x"));
        assert_eq!(url.config.get_ports(), [5433]);
    }

    #[test]
    fn the_keyword_form_is_understood_with_quotes_and_escapes() {
        let url = parsed(
            "host=db user=app sslmode = verify-ca sslrootcert='/etc/my ca\\'s.pem' dbname=app",
        );
        assert_eq!(url.mode, SslMode::VerifyCa);
        assert_eq!(
            url.root_cert,
            Some(RootCert::File("/etc/my ca's.pem".into()))
        );
        assert_eq!(url.config.get_dbname(), Some("app"));
    }

    #[test]
    fn unworkable_combinations_are_refused_with_the_reason() {
        for (url, reason) in [
            ("postgres://db/app?sslmode=verify-full", "need sslrootcert"),
            (
                "postgres://db/app?sslmode=allow",
                "sslmode=allow is not supported",
            ),
            (
                "postgres://db/app?sslmode=require&sslrootcert=system",
                "needs sslmode=verify-full",
            ),
            ("host=db sslmode=verify-ca", "need sslrootcert"),
        ] {
            let error = PgUrl::parse(url).err().unwrap_or_default();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn the_environment_s_defaults_yield_to_the_url() {
        let defaults = TlsDefaults {
            mode: Some("verify-full".into()),
            root_cert: Some("/etc/ca.pem".into()),
        };
        let url = PgUrl::parse_with("postgres://db/app", &defaults).expect("parses");
        assert_eq!(url.mode, SslMode::VerifyFull);
        assert_eq!(url.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        let url =
            PgUrl::parse_with("postgres://db/app?sslmode=disable", &defaults).expect("parses");
        assert_eq!(url.mode, SslMode::Disable);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let url = parsed("postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let error = url.connector().err().unwrap_or_default();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
