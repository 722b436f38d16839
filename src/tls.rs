//! Client-side TLS shared by the Postgres and Redis connections: the one
//! crypto provider (ring, the one tonic's server TLS uses), trust anchors
//! read from a CA file or the system, the two relaxed verifiers libpq's
//! weaker `sslmode`s call for, and finding a refused certificate in an
//! error's causes so that start-up can say what went wrong.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The provider every client TLS configuration is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process default, for libraries that build their own
/// configuration from it (the redis crate does). Without this, a second
/// provider enabled by some dependency later would make them panic.
pub fn install_default_provider() {
    // Already installed (by an earlier call, or a test) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A PEM file's bytes, or why it cannot be used.
pub fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The certificates of a PEM CA file; a file without one is refused, since
/// trusting nothing would only fail later, less clearly.
pub fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let pem = read_pem(path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(roots)
}

/// The operating system's trust store.
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(format!("no system CA certificates: {why}"));
    }
    Ok(roots)
}

/// The verifier for libpq's weaker `sslmode`s. With a chain, it checks the
/// chain up to a trusted root but not the name in it: `verify-ca`, for
/// servers reached by a name their certificate lacks. Without one, it
/// encrypts without checking who is at the other end: `require` (and
/// `prefer`) without a root certificate. Either way the handshake's
/// signatures are checked, so the session key belongs to whoever holds the
/// certificate's key.
#[derive(Debug)]
pub struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Relaxed {
    /// `algorithms` must be those `chain` was built with, so that the
    /// handshake's signatures are checked as the chain's verifier would.
    pub fn chain_only(
        chain: Arc<WebPkiServerVerifier>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            chain: Some(chain),
            algorithms,
        }
    }

    pub fn unverified(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self {
            chain: None,
            algorithms,
        }
    }
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name only after the chain, so a name mismatch
        // means the chain itself was trusted.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(error) if wrong_name(&error) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn wrong_name(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )
    )
}

/// The TLS failure among `error`'s causes, if any.
pub fn tls_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(found) = opened(current) {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

/// `error` as rustls' error, looking inside the wrappers TLS libraries put
/// it in: an `io::Error`, whose `source()` skips it, and the redis crate's
/// shared `Arc`, whose `source()` skips its content too.
fn opened<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = error.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return io.get_ref().and_then(|inner| inner.downcast_ref());
    }
    let shared = error.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?;
    opened(&**shared)
}

/// Why a TLS connection was refused, as far as an operator can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The chain is trusted, but the certificate names another host.
    WrongName,
    /// The certificate does not chain to a trusted CA, or is invalid.
    Untrusted,
    /// Anything else in the handshake.
    Handshake,
}

pub fn explain(error: &rustls::Error) -> Refusal {
    match error {
        _ if wrong_name(error) => Refusal::WrongName,
        rustls::Error::InvalidCertificate(_) => Refusal::Untrusted,
        _ => Refusal::Handshake,
    }
}
