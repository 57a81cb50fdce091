//! Everything latchkeyd keeps, one module per kind of record. Each function is one unit of work
//! (often one transaction) and takes "now" from its caller.

pub mod audit;
pub mod auth_requests;
pub mod chains;
pub mod clients;
pub mod codes;
pub mod device;
pub mod dpop;
pub mod events;
pub mod outcome;
pub mod prune;
pub mod revocation;
pub mod rotation;
pub mod sessions;
pub mod ssf;
pub mod throttle;
pub mod users;

use crate::db::Backend;

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

/// A stored name as the type it names (latchkey-proto's enums); one this version does not
/// know is a decode error.
pub(crate) fn named<T: std::str::FromStr<Err = latchkey_proto::UnknownName>>(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> std::result::Result<T, sqlx::Error> {
    parse_named(column, &sqlx::Row::try_get::<String, _>(row, column)?)
}

/// [`named`] for a name read out of a column's text.
pub(crate) fn parse_named<T: std::str::FromStr<Err = latchkey_proto::UnknownName>>(
    column: &str,
    text: &str,
) -> std::result::Result<T, sqlx::Error> {
    text.parse().map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
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

/// `count` parameters numbered from `first`, joined by commas (see [`param`]).
pub(crate) fn placeholders(backend: Backend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| param(backend, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `i`th parameter (from 1) of a statement: `$i` on PostgreSQL, a bare `?` on SQLite, so a
/// text that uses this must number its parameters in the order they appear. A numbered
/// parameter is a name to SQLite, and sqlx looks up every parameter's name when it binds, by a
/// search through all of them: a statement with hundreds of numbered parameters spent more time
/// binding than running. `?` has no name and binds by position.
pub(crate) fn param(backend: Backend, i: usize) -> String {
    match backend {
        Backend::Postgres => format!("${i}"),
        Backend::Sqlite => "?".to_string(),
    }
}
