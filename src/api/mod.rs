//! The gRPC transport: each handler checks who is calling, parses the
//! request into domain values, calls the domain, and converts back. No
//! rules live here.

mod chat_service;
mod directory;
mod groups;
mod parse;
mod register;
mod subscribe;

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

/// The verified caller (already registered by [`Register`] when the token
/// names them).
fn caller<T>(request: &Request<T>) -> Result<UserId, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    Span::current().record("user", caller.user.get());
    Ok(caller.user)
}

/// Ends a handler: records the outcome on the RPC's span and maps errors.
fn respond<T>(result: Result<T, Error>) -> Result<Response<T>, Status> {
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
