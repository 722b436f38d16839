//! Which storage failures are worth retrying, and how: the one reading of
//! SQLSTATEs and connection errors that the gRPC mapping relies on, so that
//! a caller can tell "try again" from "this is a bug".

use tokio_postgres::error::SqlState;

use super::StoreError;

/// A failure that says nothing about the request: the same call may succeed
/// if made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transient {
    /// The transaction lost a race with another (serialization failure,
    /// deadlock): it was rolled back whole, retry the call at once.
    Conflict,
    /// The database is unreachable, busy or shutting down, or the call ran
    /// into a timeout: retry after a back-off.
    Unavailable,
}

impl StoreError {
    /// `Some` when the failure is transient; `None` for one that a retry
    /// would only repeat (a bug, a corrupt row, a constraint).
    pub fn transient(&self) -> Option<Transient> {
        match self {
            StoreError::Postgres(error) => postgres(error),
            StoreError::Pool(error) => match error {
                deadpool_postgres::PoolError::Backend(error) => postgres(error),
                deadpool_postgres::PoolError::Timeout(_)
                | deadpool_postgres::PoolError::Closed
                | deadpool_postgres::PoolError::PostCreateHook(_) => Some(Transient::Unavailable),
                deadpool_postgres::PoolError::NoRuntimeSpecified => None,
            },
            StoreError::Shared(inner) => inner.transient(),
            StoreError::Migration(_)
            | StoreError::Corrupt(_)
            | StoreError::Duplicate
            | StoreError::IdTaken
            | StoreError::Url(_) => None,
        }
    }
}

fn postgres(error: &tokio_postgres::Error) -> Option<Transient> {
    match error.code() {
        Some(code) => sqlstate(code),
        // No SQLSTATE: the connection broke, was refused or timed out, or a
        // value did not convert. Only the first three are worth a retry.
        None if error.is_closed() || has_io_cause(error) => Some(Transient::Unavailable),
        None if error.to_string().contains("timeout") => Some(Transient::Unavailable),
        None => None,
    }
}

fn sqlstate(code: &SqlState) -> Option<Transient> {
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return Some(Transient::Conflict);
    }
    let transient = [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        SqlState::TOO_MANY_CONNECTIONS,
    ];
    if transient.contains(code) || code.code().starts_with("08") {
        return Some(Transient::Unavailable);
    }
    None
}

fn has_io_cause(error: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<std::io::Error>() {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn races_are_conflicts_and_timeouts_and_shutdowns_are_unavailable() {
        assert_eq!(
            sqlstate(&SqlState::T_R_SERIALIZATION_FAILURE),
            Some(Transient::Conflict)
        );
        assert_eq!(
            sqlstate(&SqlState::T_R_DEADLOCK_DETECTED),
            Some(Transient::Conflict)
        );
        for code in [
            "55P03", "57014", "57P01", "57P02", "57P03", "08006", "08001",
        ] {
            assert_eq!(
                sqlstate(&SqlState::from_code(code)),
                Some(Transient::Unavailable),
                "{code}"
            );
        }
        for code in ["23505", "42P01", "22003"] {
            assert_eq!(sqlstate(&SqlState::from_code(code)), None, "{code}");
        }
    }
}
