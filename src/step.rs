//! One tower service for the steps that run before a gRPC service and may
//! have to wait (verifying a token, registering a caller): each step says
//! only what it does, and this holds the `Service` plumbing once.

use std::task::{Context, Poll};

use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::Status;

/// Work done before the wrapped service sees a request.
pub trait Step: Clone + Send + 'static {
    /// `None` lets the request straight through, with nothing awaited.
    /// Otherwise the future either refuses the request with a status, which
    /// is the answer, or hands back extensions to add to it before the
    /// wrapped service is called.
    fn start<B>(&self, request: &http::Request<B>) -> Option<BoxFuture<http::Extensions, Status>>;
}

/// `inner` behind `step`.
#[derive(Clone)]
pub struct Before<P, S> {
    step: P,
    inner: S,
}

impl<P, S> Before<P, S> {
    pub fn wrap(step: P, inner: S) -> Self {
        Self { step, inner }
    }
}

impl<P, S: NamedService> NamedService for Before<P, S> {
    const NAME: &'static str = S::NAME;
}

impl<P, S, B, R> tower_service::Service<http::Request<B>> for Before<P, S>
where
    P: Step,
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
        let Some(step) = self.step.start(&request) else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready answers; a fresh clone waits for
        // the next request.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            match step.await {
                Ok(extensions) => {
                    request.extensions_mut().extend(extensions);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
