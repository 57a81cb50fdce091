//! The rotation writer's statements: one text for both databases, with `$n` parameters (which
//! sqlx passes to PostgreSQL as they are and SQLite reads as numbered names), and casts where
//! PostgreSQL cannot infer a parameter's type from a column. A statement over `n` families is
//! built once per `n` and kept.

use std::sync::OnceLock;

use crate::db::Backend;
use crate::store::placeholders;

/// The most refreshes one transaction takes.
pub const MAX_BATCH: usize = 64;

/// Columns of [`load`], in order; `Family::from_row` reads them by name.
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

fn texts() -> &'static Texts {
    static TEXTS: OnceLock<Texts> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let sizes = 1..=MAX_BATCH;
        Texts {
            lock: sizes.clone().map(lock_text).collect(),
            load: sizes.clone().map(load_text).collect(),
            insert: sizes.clone().map(insert_text).collect(),
            advance: sizes.map(advance_text).collect(),
        }
    })
}

/// Takes the sessions of `n` presented tokens, in session id order (the order every path that
/// holds several sessions keeps, `revocation::lock_sessions`), so that the decision made from
/// [`load`] holds until commit. PostgreSQL only: on SQLite the write transaction already holds
/// the database.
pub fn lock(backend: Backend, n: usize) -> Option<&'static str> {
    (backend == Backend::Postgres).then(|| texts().lock[n - 1].as_str())
}

/// The presented tokens (by id) with their sessions and their sessions' heads.
pub fn load(n: usize) -> &'static str {
    &texts().load[n - 1]
}

/// Inserts `n` successors; returns each one's id and session.
pub fn insert(n: usize) -> &'static str {
    &texts().insert[n - 1]
}

/// Moves the heads of `n` sessions to their successors, each only if it is still at the head
/// its decision was made on and not revoked: the count of rows changed must be `n`.
pub fn advance(n: usize) -> &'static str {
    &texts().advance[n - 1]
}

fn lock_text(n: usize) -> String {
    // Only the session rows are locked, and read again by `load` after the locks are held:
    // under READ COMMITTED a locking read of a join re-checks only the locked table's row.
    format!(
        "SELECT s.id FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id WHERE t.id IN ({}) \
         ORDER BY s.id FOR UPDATE OF s",
        placeholders(1, n)
    )
}

fn load_text(n: usize) -> String {
    format!(
        "SELECT {FAMILY_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens h ON h.id = s.head_token_id WHERE t.id IN ({})",
        placeholders(1, n)
    )
}

fn rows(n: usize, per_row: usize, row: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| row(i * per_row + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_text(n: usize) -> String {
    // The target columns give every parameter its type.
    format!(
        "INSERT INTO refresh_tokens (secret_hash, session_id, generation, parent_generation, parent_id, \
         issued_at, expires_at, issued_ip, issued_user_agent) VALUES {} RETURNING id, session_id",
        rows(n, INSERT_PARAMS, |p| format!("({})", placeholders(p, INSERT_PARAMS)))
    )
}

fn advance_text(n: usize) -> String {
    let row = |p: usize| {
        format!(
            "(CAST(${} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT), CAST(${} AS BIGINT), \
             CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT), \
             CAST(${} AS BIGINT), CAST(${} AS TEXT))",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9
        )
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

/// A grace replay counts against the replayed token, which keeps its first use from now on.
pub const COUNT_REPLAY: &str =
    "UPDATE refresh_tokens SET grace_replays = grace_replays + 1, first_used_at = $2 WHERE id = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_order() {
        assert_eq!(
            insert(2).matches('$').count(),
            2 * INSERT_PARAMS,
            "{}",
            insert(2)
        );
        assert!(insert(2).contains("($10, $11,"));
        assert_eq!(advance(3).matches('$').count(), 3 * ADVANCE_PARAMS);
        assert!(advance(2).contains("CAST($11 AS TEXT)"));
        assert!(load(MAX_BATCH).contains(&format!("${MAX_BATCH})")));
        assert_eq!(lock(Backend::Sqlite, 3), None);
    }
}
