//! Registration as a layer: before any `ChatService` handler runs, a caller
//! whose token carries a `name` claim is registered ([`Core::register`],
//! which writes once per user per replica), so a handler only reads who is
//! calling. It sits inside the authentication layer, which puts the
//! [`Caller`] into the request; a registration that fails answers with the
//! error's status, mapped as everywhere else.

use std::sync::Arc;

use tonic::codegen::BoxFuture;
use tonic::Status;
use tracing::Span;

use crate::auth::Caller;
use crate::domain::values::DisplayName;
use crate::domain::Core;
use crate::step::{Before, Step};

/// A service whose named callers are registered before it is called.
pub type Register<S> = Before<Registration, S>;

impl<S> Register<S> {
    pub fn new(core: Arc<Core>, inner: S) -> Self {
        Before::wrap(Registration(core), inner)
    }
}

/// Registers a caller whose token carries a name; others pass at once.
#[derive(Clone)]
pub struct Registration(Arc<Core>);

impl Step for Registration {
    fn start<B>(&self, request: &http::Request<B>) -> Option<BoxFuture<http::Extensions, Status>> {
        let (user, name) = request
            .extensions()
            .get::<Caller>()
            .and_then(|caller| Some((caller.user, caller.name.clone()?)))?;
        let core = self.0.clone();
        Some(Box::pin(async move {
            Span::current().record("user", user.get());
            let registered = match DisplayName::parse("token name", &name) {
                Ok(name) => core.users().register(user, &name).await,
                Err(error) => Err(error),
            };
            registered.map_err(Status::from)?;
            Ok(http::Extensions::new())
        }))
    }
}
