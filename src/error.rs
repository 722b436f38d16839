//! The domain's error, and the one place it becomes a gRPC status.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::store::{StoreError, Transient};

/// Why a request was refused. Every variant names what was wrong in words a
/// caller can act on; `Store` is the exception and is never shown in detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    /// A per-user rate limit: `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`.
    #[error("too many {what} calls: at most {rate}; retry in {} ms", retry_after.as_millis().max(1))]
    RateLimited {
        what: &'static str,
        rate: crate::domain::limits::Rate,
        retry_after: std::time::Duration,
    },
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl Error {
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::InvalidArgument(format!("{field}: {problem}"))
    }

    /// The caller is not in the chat, or it does not exist: both look the same
    /// so that a chat's existence is not revealed to outsiders.
    pub fn chat_not_found() -> Self {
        Self::NotFound("chat not found".into())
    }
}

/// A storage failure as the caller sees it: transient ones say to retry
/// (ABORTED: the whole call lost a race; UNAVAILABLE: back off first), and
/// nothing the call wrote was kept; any other is a bug, logged here and
/// shown as INTERNAL.
fn store_status(cause: &StoreError) -> Status {
    match cause.transient() {
        Some(Transient::Conflict) => {
            tracing::info!(error = %cause, "transaction conflict");
            Status::aborted(
                "the call conflicted with a concurrent one and changed nothing; retry it",
            )
        }
        Some(Transient::Unavailable) => {
            tracing::warn!(error = %cause, "storage unavailable");
            Status::unavailable(
                "storage is unavailable or timed out and nothing was changed; retry with back-off",
            )
        }
        None => {
            tracing::error!(error = %cause, detail = ?cause, "storage error");
            Status::internal("internal error")
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::RateLimited { retry_after, .. } => {
                // Clients that read status details wait this long before a retry.
                let details = ErrorDetails::with_retry_info(Some(*retry_after));
                return Status::with_error_details(
                    Code::ResourceExhausted,
                    error.to_string(),
                    details,
                );
            }
            Error::Store(cause) => return store_status(cause),
        };
        Status::new(code, error.to_string())
    }
}
