//! Authentication as a step in front of `ChatService` and `UserDirectory`.
//! Not a tonic interceptor: those are synchronous, and a token naming a key
//! published a moment ago waits for the keys to reload.

use std::sync::Arc;

use tonic::codegen::BoxFuture;
use tonic::Status;

use super::Verifier;
use crate::step::{Before, Step};

/// A service that only sees requests with a verified [`Caller`] in their
/// extensions.
///
/// [`Caller`]: super::Caller
pub type Authenticate<S> = Before<Authentication, S>;

impl<S> Authenticate<S> {
    pub fn new(verifier: Arc<Verifier>, inner: S) -> Self {
        Before::wrap(Authentication(verifier), inner)
    }
}

/// Verifies the bearer token and puts its [`Caller`] into the request.
///
/// [`Caller`]: super::Caller
#[derive(Clone)]
pub struct Authentication(Arc<Verifier>);

impl Step for Authentication {
    fn start<B>(&self, request: &http::Request<B>) -> Option<BoxFuture<http::Extensions, Status>> {
        let token = bearer(request);
        let verifier = self.0.clone();
        Some(Box::pin(async move {
            let caller = verifier
                .verify(&token?)
                .await
                .map_err(Status::unauthenticated)?;
            let mut extensions = http::Extensions::new();
            extensions.insert(caller);
            Ok(extensions)
        }))
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
