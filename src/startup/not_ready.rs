//! The answer of a replica that has bound its port but cannot serve yet
//! (its store still connecting or migrating): UNAVAILABLE, which callers
//! retry, rather than the UNIMPLEMENTED a server without the service would
//! give, which they would not.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

/// Stands in for the service `S` (only its name is used) until it is ready.
pub struct NotReady<S>(PhantomData<fn() -> S>);

impl<S> NotReady<S> {
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Clone for NotReady<S> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<S: NamedService> NamedService for NotReady<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for NotReady<S> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        ready(Ok(Status::unavailable(
            "the replica is starting and does not serve yet; retry",
        )
        .into_http()))
    }
}
