//! The rotation writer's statements: one text for both databases, its parameters written by
//! [`param`] (`$n` on PostgreSQL, `?` on SQLite, numbered in the order they appear), with casts
//! where PostgreSQL cannot infer a parameter's type from a column. A statement over `n`
//! families is built once per database and `n`, and kept.

use std::sync::OnceLock;

use super::decide::{Family, Revoked, Successor};
use super::plan::Pending;
use crate::clock::Millis;
use crate::db::Backend;
use crate::signals::PriorUse;
use crate::store::{param, placeholders};

/// The most refreshes one transaction takes.
pub const MAX_BATCH: usize = 64;

/// Columns of [`load`], in the order [`family`] reads them.
const FAMILY_COLUMNS: &str = "t.id, t.secret_hash, t.session_id, t.generation, t.issued_at, t.issued_ip, \
     t.issued_user_agent, t.expires_at, t.first_used_at, t.grace_replays, s.user_id, s.client_id, s.scope, \
     s.auth_time, s.expires_at AS session_expires_at, s.revoked_at, s.revoke_reason, s.head_token_id, \
     s.generation AS session_generation, s.dpop_jkt, s.rate_window_start, s.rate_window_count, \
     h.parent_id AS head_parent_id, h.issued_at AS head_issued_at";

/// Parameters of one successor in [`insert`].
pub const INSERT_PARAMS: usize = 9;
/// Parameters of one session in [`advance`].
pub const ADVANCE_PARAMS: usize = 10;

struct Texts {
    lock: Vec<String>,
    load: Vec<String>,
    insert: Vec<String>,
    advance: Vec<String>,
}

impl Texts {
    fn new(backend: Backend) -> Self {
        let sizes = 1..=MAX_BATCH;
        Self {
            lock: sizes.clone().map(|n| lock_text(backend, n)).collect(),
            load: sizes.clone().map(|n| load_text(backend, n)).collect(),
            insert: sizes.clone().map(|n| insert_text(backend, n)).collect(),
            advance: sizes.map(|n| advance_text(backend, n)).collect(),
        }
    }
}

fn texts(backend: Backend) -> &'static Texts {
    static SQLITE: OnceLock<Texts> = OnceLock::new();
    static POSTGRES: OnceLock<Texts> = OnceLock::new();
    match backend {
        Backend::Sqlite => SQLITE.get_or_init(|| Texts::new(backend)),
        Backend::Postgres => POSTGRES.get_or_init(|| Texts::new(backend)),
    }
}

/// Takes the sessions of `n` presented tokens, in session id order (the order every path that
/// holds several sessions keeps, `revocation::lock_sessions`), so that the decision made from
/// [`load`] holds until commit. PostgreSQL only: on SQLite the write transaction already holds
/// the database.
pub fn lock(backend: Backend, n: usize) -> Option<&'static str> {
    (backend == Backend::Postgres).then(|| texts(backend).lock[n - 1].as_str())
}

/// The presented tokens (by id) with their sessions and their sessions' heads.
pub fn load(backend: Backend, n: usize) -> &'static str {
    &texts(backend).load[n - 1]
}

/// Inserts `n` successors; returns each one's id and session.
pub fn insert(backend: Backend, n: usize) -> &'static str {
    &texts(backend).insert[n - 1]
}

/// Moves the heads of `n` sessions to their successors, each only if it is still at the head
/// its decision was made on and not revoked: the count of rows changed must be `n`.
pub fn advance(backend: Backend, n: usize) -> &'static str {
    &texts(backend).advance[n - 1]
}

fn lock_text(backend: Backend, n: usize) -> String {
    // Only the session rows are locked, and read again by `load` after the locks are held:
    // under READ COMMITTED a locking read of a join re-checks only the locked table's row.
    format!(
        "SELECT s.id FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id WHERE t.id IN ({}) \
         ORDER BY s.id FOR UPDATE OF s",
        placeholders(backend, 1, n)
    )
}

fn load_text(backend: Backend, n: usize) -> String {
    format!(
        "SELECT {FAMILY_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens h ON h.id = s.head_token_id WHERE t.id IN ({})",
        placeholders(backend, 1, n)
    )
}

/// `n` rows of `per_row` parameters each, numbered on from 1.
fn rows(n: usize, per_row: usize, row: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| row(i * per_row + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_text(backend: Backend, n: usize) -> String {
    // The target columns give every parameter its type.
    format!(
        "INSERT INTO refresh_tokens (secret_hash, session_id, generation, parent_generation, parent_id, \
         issued_at, expires_at, issued_ip, issued_user_agent) VALUES {} RETURNING id, session_id",
        rows(n, INSERT_PARAMS, |p| format!(
            "({})",
            placeholders(backend, p, INSERT_PARAMS)
        ))
    )
}

fn advance_text(backend: Backend, n: usize) -> String {
    const TYPES: [&str; ADVANCE_PARAMS] = [
        "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT",
    ];
    let row = |p: usize| {
        let values: Vec<String> = TYPES
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("CAST({} AS {ty})", param(backend, p + i)))
            .collect();
        format!("({})", values.join(", "))
    };
    format!(
        "WITH v (id, expected_head, head, generation, used_at, ip, user_agent, window_start, window_count, \
         dpop_jkt) AS (VALUES {}) \
         UPDATE sessions SET head_token_id = v.head, generation = v.generation, last_used_at = v.used_at, \
         last_ip = v.ip, last_user_agent = v.user_agent, rate_window_start = v.window_start, \
         rate_window_count = v.window_count, dpop_jkt = v.dpop_jkt \
         FROM v WHERE sessions.id = v.id AND sessions.head_token_id = v.expected_head \
         AND sessions.revoked_at IS NULL",
        rows(n, ADVANCE_PARAMS, row)
    )
}

/// A parameter's value, bound alike by either connection.
pub enum Value<'a> {
    Int(i64),
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Blob(&'a [u8]),
}

/// One successor's parameters of [`insert`], in order.
pub fn insert_row<'a>(
    p: &'a Pending,
    s: &'a Successor,
    f: &'a Family,
    now: Millis,
) -> [Value<'a>; INSERT_PARAMS] {
    let origin = &p.request.origin;
    [
        Value::Blob(&p.successor.1),
        Value::Text(&f.session_id),
        Value::Int(s.generation),
        Value::Int(f.generation),
        Value::Int(f.token_id),
        Value::Int(now),
        Value::Int(s.expires_at),
        Value::MaybeText(origin.ip.as_deref()),
        Value::MaybeText(origin.user_agent.as_deref()),
    ]
}

/// One session's parameters of [`advance`], in order: its head moves to `head`.
pub fn advance_row<'a>(
    p: &'a Pending,
    s: &'a Successor,
    f: &'a Family,
    head: i64,
    now: Millis,
) -> [Value<'a>; ADVANCE_PARAMS] {
    let origin = &p.request.origin;
    [
        Value::Text(&f.session_id),
        Value::Int(s.expected_head),
        Value::Int(head),
        Value::Int(s.generation),
        Value::Int(now),
        Value::MaybeText(origin.ip.as_deref()),
        Value::MaybeText(origin.user_agent.as_deref()),
        Value::Int(s.window_start),
        Value::Int(s.window_count),
        Value::MaybeText(s.dpop_jkt.as_deref()),
    ]
}

/// A row of [`load`] from either connection, read by position.
pub trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn maybe_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn blob(&self, i: usize) -> Result<Vec<u8>, Self::Error>;
}

/// The family of a row of [`load`] (its columns are [`FAMILY_COLUMNS`]).
pub fn family<R: Columns>(row: &R) -> Result<Family, R::Error> {
    Ok(Family {
        token_id: row.int(0)?,
        secret_hash: row.blob(1)?,
        session_id: row.text(2)?,
        generation: row.int(3)?,
        issued: PriorUse {
            at: row.int(4)?,
            ip: row.maybe_text(5)?,
            user_agent: row.maybe_text(6)?,
        },
        token_expires_at: row.int(7)?,
        first_used_at: row.maybe_int(8)?,
        grace_replays: row.int(9)?,
        user_id: row.text(10)?,
        client_id: row.text(11)?,
        scope: row.text(12)?,
        auth_time: row.int(13)?,
        session_expires_at: row.int(14)?,
        revoked: match row.maybe_int(15)? {
            Some(_) => Some(Revoked {
                reason: row.maybe_text(16)?,
            }),
            None => None,
        },
        head: row.maybe_int(17)?,
        session_generation: row.int(18)?,
        dpop_jkt: row.maybe_text(19)?,
        window_start: row.int(20)?,
        window_count: row.int(21)?,
        head_parent: row.maybe_int(22)?,
        head_issued_at: row.maybe_int(23)?,
    })
}

/// A grace replay counts against the replayed token, which keeps its first use from now on.
pub const COUNT_REPLAY: &str =
    "UPDATE refresh_tokens SET grace_replays = grace_replays + 1, first_used_at = $2 WHERE id = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_order() {
        let pg = Backend::Postgres;
        assert_eq!(insert(pg, 2).matches('$').count(), 2 * INSERT_PARAMS);
        assert!(insert(pg, 2).contains("($10, $11,"), "{}", insert(pg, 2));
        assert_eq!(advance(pg, 3).matches('$').count(), 3 * ADVANCE_PARAMS);
        assert!(advance(pg, 2).contains("CAST($11 AS TEXT)"));
        assert!(load(pg, MAX_BATCH).contains(&format!("${MAX_BATCH})")));
        assert_eq!(lock(Backend::Sqlite, 3), None);
    }

    #[test]
    fn sqlite_parameters_are_positional() {
        let lite = Backend::Sqlite;
        assert!(!insert(lite, 2).contains('$'));
        assert_eq!(insert(lite, 2).matches('?').count(), 2 * INSERT_PARAMS);
        assert_eq!(advance(lite, 3).matches('?').count(), 3 * ADVANCE_PARAMS);
        assert_eq!(load(lite, 5).matches('?').count(), 5);
    }
}
