//! The gRPC transport: each handler is [`handle`] (or [`serve`]) around a
//! closure that parses the request into domain values and calls the domain;
//! the helper checks who is calling and converts the outcome back. No rules
//! live here.

mod chat_service;
mod directory;
mod groups;
mod parse;
#[cfg(test)]
mod props;
mod register;
mod subscribe;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::Span;

use crate::auth::Caller;
use crate::domain::Core;
use crate::error::Error;
use crate::model::UserId;

pub use directory::DirectoryApi;
pub use register::Register;

/// `ChatService`: one per replica, cloned into each connection.
#[derive(Clone)]
pub struct ChatApi {
    core: Arc<Core>,
    /// Becomes `true` when the replica begins shutting down: streams end.
    stopping: watch::Receiver<bool>,
}

impl ChatApi {
    pub fn new(core: Arc<Core>, stopping: watch::Receiver<bool>) -> Self {
        Self { core, stopping }
    }
}

/// What every handler returns.
type Reply<T> = Result<Response<T>, Status>;

/// The handler skeleton, written once: authenticate (a request without a
/// [`Caller`] is refused), let `authorize` turn the caller into what `call`
/// needs, then run `call` on the request body (it parses the body into domain
/// values and calls the domain) and end with [`respond`].
async fn serve<B, A, T, Fut>(
    request: Request<B>,
    authorize: impl FnOnce(&Caller) -> Result<A, Status>,
    call: impl FnOnce(A, B) -> Fut,
) -> Reply<T>
where
    Fut: Future<Output = Result<T, Error>>,
{
    let caller = request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    let who = authorize(caller)?;
    respond(call(who, request.into_inner()).await)
}

/// [`serve`] for a call any user may make: `call` gets the caller's id.
async fn handle<B, T, Fut>(request: Request<B>, call: impl FnOnce(UserId, B) -> Fut) -> Reply<T>
where
    Fut: Future<Output = Result<T, Error>>,
{
    serve(request, user, call).await
}

/// The verified user (already registered by [`Register`] when the token
/// names them), recorded on the RPC's span.
fn user(caller: &Caller) -> Result<UserId, Status> {
    Span::current().record("user", caller.user.get());
    Ok(caller.user)
}

/// Ends a handler: records the outcome on the RPC's span and maps errors.
fn respond<T>(result: Result<T, Error>) -> Reply<T> {
    match result {
        Ok(value) => {
            Span::current().record("rpc.grpc.status_code", 0);
            Ok(Response::new(value))
        }
        Err(error) => {
            let status = Status::from(error);
            Span::current().record("rpc.grpc.status_code", status.code() as i32);
            tracing::debug!(message = status.message(), "rpc refused");
            Err(status)
        }
    }
}
