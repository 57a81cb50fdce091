//! Everything latchkeyd keeps, one module per kind of record. Each function is one unit of work
//! (often one transaction) and takes "now" from its caller.

pub mod audit;
pub mod auth_requests;
pub mod chains;
pub mod clients;
pub mod codes;
pub mod dpop;
pub mod events;
pub mod outcome;
pub mod prune;
pub mod revocation;
pub mod rotation;
pub mod sessions;
pub mod throttle;
pub mod users;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The request conflicts with what is stored (a duplicate email or client id).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The input was refused before anything was stored.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a request came from, as recorded on sessions, tokens and events.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Turns a unique-constraint violation into a readable conflict.
pub(crate) fn conflict_on_unique(e: sqlx::Error, message: impl Into<String>) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.into())
        }
        _ => StoreError::Db(e),
    }
}

/// `$first, …` for `count` parameters.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
