//! Registration as a layer: before any `ChatService` handler runs, a caller
//! whose token carries a `name` claim is registered ([`Core::register`],
//! which writes once per user per replica), so a handler only reads who is
//! calling. It sits inside the authentication layer, which puts the
//! [`Caller`] into the request; a registration that fails answers with the
//! error's status, mapped as everywhere else.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::Status;
use tracing::Span;

use crate::auth::Caller;
use crate::domain::values::DisplayName;
use crate::domain::Core;

/// Wraps a service so that named callers are registered before it is called.
#[derive(Clone)]
pub struct Register<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S> Register<S> {
    pub fn new(core: Arc<Core>, inner: S) -> Self {
        Self { inner, core }
    }
}

impl<S: NamedService> NamedService for Register<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Register<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let named = request
            .extensions()
            .get::<Caller>()
            .and_then(|caller| Some((caller.user, caller.name.clone()?)));
        let Some((user, name)) = named else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready answers; a fresh clone waits for
        // the next request.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let core = self.core.clone();
        Box::pin(async move {
            Span::current().record("user", user.get());
            let registered = match DisplayName::parse("token name", &name) {
                Ok(name) => core.users().register(user, &name).await,
                Err(error) => Err(error),
            };
            if let Err(error) = registered {
                return Ok(Status::from(error).into_http());
            }
            inner.call(request).await
        })
    }
}
