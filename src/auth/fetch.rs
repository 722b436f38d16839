//! Fetches a JWKS document over HTTP or HTTPS: one GET, bounded in time and
//! size, TLS verified against the system's CA roots (which `SSL_CERT_FILE`
//! can replace, e.g. with an internal CA).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A fetch longer than this fails; the keys already held stay in use.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Far above a real JWKS (a few KiB), and bounded: the response is untrusted.
const MAX_BYTES: usize = 1 << 20;

/// Why a fetch failed, and whether it may succeed later (a server that is
/// down) or is a mistake in the settings (a 404, a missing CA root).
#[derive(Debug)]
pub struct FetchError {
    pub message: String,
    pub transient: bool,
}

impl FetchError {
    fn transient(message: String) -> Self {
        Self {
            message,
            transient: true,
        }
    }

    fn permanent(message: String) -> Self {
        Self {
            message,
            transient: false,
        }
    }
}

pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Fetcher {
    /// A client for `uri`; CA roots are loaded only for an `https` URL.
    pub fn new(uri: &Uri) -> Result<Self, FetchError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| {
                    FetchError::permanent(format!(
                        "no CA certificates to verify HTTPS with ({e}): install the system's CA bundle or set SSL_CERT_FILE"
                    ))
                })?
        } else {
            // Plain HTTP: TLS is never used, so no roots are needed.
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| FetchError::permanent(format!("TLS: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(tls)
        };
        let https = builder.https_or_http().enable_http1().build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The body of a successful GET of `uri`.
    pub async fn get(&self, uri: &Uri) -> Result<Bytes, FetchError> {
        let request = http::Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| FetchError::permanent(e.to_string()))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::transient(crate::telemetry::error_chain(&e)))?;
            let status = response.status();
            if !status.is_success() {
                let message = format!("the server answered {status}");
                return Err(match status.is_server_error() {
                    true => FetchError::transient(message),
                    false => FetchError::permanent(message),
                });
            }
            Limited::new(response.into_body(), MAX_BYTES)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| FetchError::transient(format!("reading the body: {e}")))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| FetchError::transient(format!("no answer in {FETCH_TIMEOUT:?}")))?
    }
}
