//! Authentication as a tower service around `ChatService` and
//! `UserDirectory`. Not a tonic interceptor: those are synchronous, and a
//! token naming a key published a moment ago waits for the keys to reload.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::Status;

use super::Verifier;

/// Wraps a service so that it only sees requests with a verified [`Caller`]
/// in their extensions.
///
/// [`Caller`]: super::Caller
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> Authenticate<S> {
    pub fn new(verifier: Arc<Verifier>, inner: S) -> Self {
        Self { inner, verifier }
    }
}

impl<S: NamedService> NamedService for Authenticate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Authenticate<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready answers; a fresh clone waits for
        // the next request.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = match bearer(&request) {
                Ok(token) => token,
                Err(status) => return Ok(status.into_http()),
            };
            match verifier.verify(&token).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(why) => Ok(Status::unauthenticated(why).into_http()),
            }
        })
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer<B>(request: &http::Request<B>) -> Result<String, Status> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("missing authorization metadata"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|token| token.trim().to_owned())
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))
}
