//! The rotation writer's statements, each text written once for both databases by a small
//! query layer: [`param`] writes a parameter (`$n` on PostgreSQL, a positional `?` on
//! SQLite), [`rows_of`] a list of rows, typed where PostgreSQL cannot infer a parameter's type.
//! A statement over `n` families is built once per database and `n`, and kept.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::decide::{Family, Revoked, Successor};
use super::plan::Pending;
use crate::clock::Millis;
use crate::db::Backend;
use crate::signals::PriorUse;
use crate::store::{param, placeholders, Origin};

/// The most refreshes one transaction takes.
pub const MAX_BATCH: usize = 64;

/// Columns of [`load`], in the order [`family`] reads them.
const FAMILY_COLUMNS: &str = "t.id, t.secret_hash, t.session_id, t.generation, t.issued_at, t.issued_ip, \
     t.issued_user_agent, t.expires_at, t.first_used_at, t.grace_replays, s.user_id, s.client_id, s.scope, \
     s.auth_time, s.expires_at AS session_expires_at, s.revoked_at, s.revoke_reason, s.head_token_id, \
     s.generation AS session_generation, s.dpop_jkt, s.rate_window_start, s.rate_window_count, \
     h.parent_id AS head_parent_id, h.issued_at AS head_issued_at";

/// A column of a list of rows: its name and its PostgreSQL type.
pub type Column = (&'static str, &'static str);

/// The rows of [`insert`]: a refresh token's columns.
pub const INSERT_COLUMNS: [Column; 9] = [
    ("secret_hash", "BYTEA"),
    ("session_id", "TEXT"),
    ("generation", "BIGINT"),
    ("parent_generation", "BIGINT"),
    ("parent_id", "BIGINT"),
    ("issued_at", "BIGINT"),
    ("expires_at", "BIGINT"),
    ("issued_ip", "TEXT"),
    ("issued_user_agent", "TEXT"),
];

/// What moves a session's head, but the new head itself: the first columns of both
/// [`ADVANCE_COLUMNS`] and [`ROTATE_COLUMNS`], read by [`head_move`].
const MOVE_COLUMNS: [Column; 9] = [
    ("id", "TEXT"),
    ("expected_head", "BIGINT"),
    ("generation", "BIGINT"),
    ("used_at", "BIGINT"),
    ("ip", "TEXT"),
    ("user_agent", "TEXT"),
    ("window_start", "BIGINT"),
    ("window_count", "BIGINT"),
    ("dpop_jkt", "TEXT"),
];

/// The rows of [`advance`]: a session's move, then its new head.
pub const ADVANCE_COLUMNS: [Column; 10] = concat(MOVE_COLUMNS, [("head", "BIGINT")]);

/// The rows of [`rotate`]: a session's move (its new head [`rotate`] draws), then the rest of
/// its successor's row of [`INSERT_COLUMNS`].
pub const ROTATE_COLUMNS: [Column; 13] = concat(
    MOVE_COLUMNS,
    [
        ("secret_hash", "BYTEA"),
        ("parent_generation", "BIGINT"),
        ("parent_id", "BIGINT"),
        ("expires_at", "BIGINT"),
    ],
);

const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [Column; A],
    b: [Column; B],
) -> [Column; N] {
    assert!(A + B == N, "the lengths add up");
    let mut out = [("", ""); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

struct Texts {
    lock: Vec<String>,
    load: Vec<String>,
    insert: Vec<String>,
    advance: Vec<String>,
    rotate: Vec<String>,
    insert_one: String,
    advance_one: String,
}

impl Texts {
    fn new(backend: Backend) -> Self {
        let sizes = 1..=MAX_BATCH;
        Self {
            // SQLite takes no locks (see [`lock`]).
            lock: match backend {
                Backend::Postgres => sizes.clone().map(|n| lock_text(backend, n)).collect(),
                Backend::Sqlite => Vec::new(),
            },
            load: sizes.clone().map(|n| load_text(backend, n)).collect(),
            insert: sizes.clone().map(|n| insert_text(backend, n)).collect(),
            advance: sizes.clone().map(|n| advance_text(backend, n)).collect(),
            // SQLite has no data-modifying CTE: it inserts, then advances.
            rotate: match backend {
                Backend::Postgres => sizes.map(rotate_text).collect(),
                Backend::Sqlite => Vec::new(),
            },
            insert_one: insert_one_text(backend),
            advance_one: head_move(Source::Params(backend)),
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

/// Takes the sessions of `n` presented tokens (bound by [`ids`]), in session id order (the
/// order every path that holds several sessions keeps, `revocation::lock_sessions`), so that
/// the decision made from [`load`] holds until commit. PostgreSQL only: on SQLite the write
/// transaction already holds the database.
pub fn lock(backend: Backend, n: usize) -> Option<&'static str> {
    (backend == Backend::Postgres).then(|| texts(backend).lock[n - 1].as_str())
}

/// The presented tokens (`n`, bound by [`ids`]) with their sessions and their sessions' heads.
pub fn load(backend: Backend, n: usize) -> &'static str {
    &texts(backend).load[n - 1]
}

/// Inserts `n` successors (rows of [`INSERT_COLUMNS`]); returns each one's id and
/// session.
pub fn insert(backend: Backend, n: usize) -> &'static str {
    &texts(backend).insert[n - 1]
}

/// Moves the heads of `n` sessions (rows of [`ADVANCE_COLUMNS`]) to their
/// successors, each only if it is still at the head its decision was made on and not revoked:
/// the count of rows changed must be `n`.
pub fn advance(backend: Backend, n: usize) -> &'static str {
    &texts(backend).advance[n - 1]
}

/// Inserts one successor (a row of [`INSERT_COLUMNS`]); its id is the connection's last
/// inserted row id. For a writer with no round trips to save (SQLite's own connection), one
/// row at a time needs no temporary tables for the rows or the ids returned.
pub fn insert_one(backend: Backend) -> &'static str {
    &texts(backend).insert_one
}

/// Moves one session's head (a row of [`ADVANCE_COLUMNS`]) as [`advance`] does; the count of
/// rows changed must be 1.
pub fn advance_one(backend: Backend) -> &'static str {
    &texts(backend).advance_one
}

/// PostgreSQL: inserts `n` successors and moves their sessions' heads to them in one
/// statement (rows of [`ROTATE_COLUMNS`]), each only if its session is still at the head and
/// liveness its rotation was decided on; a successor is written only with its head's move.
/// Returns each written successor's id and session. One statement is one round trip, and
/// outside a transaction its own commit: a batch that moved every head needs nothing else.
pub fn rotate(n: usize) -> &'static str {
    &texts(Backend::Postgres).rotate[n - 1]
}

/// `IN (…)`: a test against `n` ids, the statement's first parameters.
fn any_id(backend: Backend, n: usize) -> String {
    format!("IN ({})", placeholders(backend, 1, n))
}

/// A query of `n` rows of `columns`, named so, from the statement's parameters in row order.
fn rows_of(backend: Backend, n: usize, columns: &[Column]) -> String {
    let k = columns.len();
    let row = |r: usize| {
        let values: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(c, (_, ty))| {
                let p = param(backend, r * k + c + 1);
                match backend {
                    Backend::Postgres => format!("CAST({p} AS {ty})"),
                    // SQLite would read an unknown type name as NUMERIC, and cast a blob to it.
                    Backend::Sqlite => p,
                }
            })
            .collect();
        format!("({})", values.join(", "))
    };
    let names: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(c, (name, _))| format!("column{} AS {name}", c + 1))
        .collect();
    format!(
        "SELECT {} FROM (VALUES {}) AS r",
        names.join(", "),
        (0..n).map(row).collect::<Vec<_>>().join(", ")
    )
}

fn lock_text(backend: Backend, n: usize) -> String {
    // Only the session rows are locked, and read again by `load` after the locks are held:
    // under READ COMMITTED a locking read of a join re-checks only the locked table's row.
    format!(
        "SELECT s.id FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id WHERE t.id {} \
         ORDER BY s.id FOR UPDATE OF s",
        any_id(backend, n)
    )
}

fn load_text(backend: Backend, n: usize) -> String {
    format!(
        "SELECT {FAMILY_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens h ON h.id = s.head_token_id WHERE t.id {}",
        any_id(backend, n)
    )
}

fn insert_text(backend: Backend, n: usize) -> String {
    let names: Vec<&str> = INSERT_COLUMNS.iter().map(|(name, _)| *name).collect();
    format!(
        "INSERT INTO refresh_tokens ({}) {} RETURNING id, session_id",
        names.join(", "),
        rows_of(backend, n, &INSERT_COLUMNS)
    )
}

/// What a head's move sets: each column of `sessions`, and the column of [`ADVANCE_COLUMNS`]
/// it takes.
const HEAD_SETS: [(&str, &str); 8] = [
    ("head_token_id", "head"),
    ("generation", "generation"),
    ("last_used_at", "used_at"),
    ("last_ip", "ip"),
    ("last_user_agent", "user_agent"),
    ("rate_window_start", "window_start"),
    ("rate_window_count", "window_count"),
    ("dpop_jkt", "dpop_jkt"),
];

/// Where a head's move takes its values from.
#[derive(Clone, Copy)]
enum Source {
    /// A list of rows `v` with the columns of [`ADVANCE_COLUMNS`].
    Rows,
    /// One row, bound as the statement's parameters in the order of [`ADVANCE_COLUMNS`]. They
    /// are numbered (`?n` on SQLite too): the text uses them in another order.
    Params(Backend),
}

fn insert_one_text(backend: Backend) -> String {
    let names: Vec<&str> = INSERT_COLUMNS.iter().map(|(name, _)| *name).collect();
    format!(
        "INSERT INTO refresh_tokens ({}) VALUES ({})",
        names.join(", "),
        placeholders(backend, 1, INSERT_COLUMNS.len())
    )
}

/// A head's move: only where the session is still at the head and liveness the rotation was
/// decided on. The row lock the UPDATE takes re-checks that condition against the newest
/// version of the session.
fn head_move(source: Source) -> String {
    let value = |name: &str| match source {
        Source::Rows => format!("v.{name}"),
        Source::Params(backend) => {
            let i = ADVANCE_COLUMNS.iter().position(|(c, _)| *c == name);
            let i = i.expect("a column of ADVANCE_COLUMNS") + 1;
            match backend {
                Backend::Postgres => format!("${i}"),
                Backend::Sqlite => format!("?{i}"),
            }
        }
    };
    let sets: Vec<String> = HEAD_SETS
        .iter()
        .map(|(column, from)| format!("{column} = {}", value(from)))
        .collect();
    format!(
        "UPDATE sessions SET {}{} WHERE sessions.id = {} AND sessions.head_token_id = {} \
         AND sessions.revoked_at IS NULL",
        sets.join(", "),
        if matches!(source, Source::Rows) {
            " FROM v"
        } else {
            ""
        },
        value("id"),
        value("expected_head"),
    )
}

fn advance_text(backend: Backend, n: usize) -> String {
    // MATERIALIZED: PostgreSQL would otherwise scan the VALUES once per session.
    format!(
        "WITH v AS MATERIALIZED ({}) {}",
        rows_of(backend, n, &ADVANCE_COLUMNS),
        head_move(Source::Rows)
    )
}

fn rotate_text(n: usize) -> String {
    // The successor's id is drawn before the head moves, so that the successor is inserted
    // only for the heads that moved. Every sub-statement sees one snapshot; the insert sees the
    // moves through `RETURNING` alone.
    format!(
        "WITH v AS MATERIALIZED (SELECT w.*, nextval(pg_get_serial_sequence('refresh_tokens', 'id')) \
         AS head FROM ({}) AS w), moved AS ({} RETURNING v.head) \
         INSERT INTO refresh_tokens (id, {}) OVERRIDING SYSTEM VALUE \
         SELECT v.head, v.secret_hash, v.id, v.generation, v.parent_generation, v.parent_id, \
         v.used_at, v.expires_at, v.ip, v.user_agent FROM v JOIN moved ON moved.head = v.head \
         RETURNING id, session_id",
        rows_of(Backend::Postgres, n, &ROTATE_COLUMNS),
        head_move(Source::Rows),
        INSERT_COLUMNS.map(|(name, _)| name).join(", "),
    )
}

/// A parameter's value, bound alike by either connection.
pub enum Value<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Blob(&'a [u8]),
}

/// The parameters of a list of ids, for [`any_id`].
pub fn ids(ids: &[i64]) -> impl Iterator<Item = Value<'static>> + '_ {
    ids.iter().map(|&id| Value::Int(id))
}

/// A refresh token's row of [`INSERT_COLUMNS`]: the successor of a parent (its generation and
/// id), or a family's first token, which has none.
pub fn token_row<'a>(
    secret_hash: &'a [u8],
    session_id: &'a str,
    generation: i64,
    parent: Option<(i64, i64)>,
    expires_at: Millis,
    origin: &'a Origin,
    now: Millis,
) -> [Value<'a>; INSERT_COLUMNS.len()] {
    [
        Value::Blob(secret_hash),
        Value::Text(session_id),
        Value::Int(generation),
        Value::MaybeInt(parent.map(|(generation, _)| generation)),
        Value::MaybeInt(parent.map(|(_, id)| id)),
        Value::Int(now),
        Value::Int(expires_at),
        Value::MaybeText(origin.ip.as_deref()),
        Value::MaybeText(origin.user_agent.as_deref()),
    ]
}

/// The rows of [`insert`] for a batch's rotations.
pub fn insert_rows<'a, 'g>(
    granted: &'g [(&'a Pending, &'a Successor, &'a Family)],
    now: Millis,
) -> impl Iterator<Item = Value<'a>> + 'g {
    granted.iter().flat_map(move |&(p, s, f)| {
        token_row(
            &p.successor.1,
            &f.session_id,
            s.generation,
            Some((f.generation, f.token_id)),
            s.expires_at,
            &p.request.origin,
            now,
        )
    })
}

/// The rows of [`advance`] for a batch's rotations, each session's head moving to its
/// successor in `heads`; `None` if a successor is missing there.
pub fn advance_rows<'a>(
    granted: &[(&'a Pending, &'a Successor, &'a Family)],
    heads: &HashMap<String, i64>,
    now: Millis,
) -> Option<Vec<Value<'a>>> {
    let mut rows = Vec::with_capacity(granted.len() * ADVANCE_COLUMNS.len());
    for &(p, s, f) in granted {
        rows.extend(advance_row(p, s, f, *heads.get(&f.session_id)?, now));
    }
    Some(rows)
}

/// One session's row of [`ADVANCE_COLUMNS`], its head moving to `head`.
pub fn advance_row<'a>(
    p: &'a Pending,
    s: &'a Successor,
    f: &'a Family,
    head: i64,
    now: Millis,
) -> impl Iterator<Item = Value<'a>> {
    move_row(p, s, f, now).into_iter().chain([Value::Int(head)])
}

/// The rows of [`rotate`] for a batch's rotations.
pub fn rotate_rows<'a, 'g>(
    granted: &'g [(&'a Pending, &'a Successor, &'a Family)],
    now: Millis,
) -> impl Iterator<Item = Value<'a>> + 'g {
    granted.iter().flat_map(move |&(p, s, f)| {
        let successor = [
            Value::Blob(&p.successor.1),
            Value::Int(f.generation),
            Value::Int(f.token_id),
            Value::Int(s.expires_at),
        ];
        move_row(p, s, f, now).into_iter().chain(successor)
    })
}

/// One session's row of [`MOVE_COLUMNS`].
fn move_row<'a>(
    p: &'a Pending,
    s: &'a Successor,
    f: &'a Family,
    now: Millis,
) -> [Value<'a>; MOVE_COLUMNS.len()] {
    let origin = &p.request.origin;
    [
        Value::Text(&f.session_id),
        Value::Int(s.expected_head),
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
        assert_eq!(insert(pg, 2).matches('$').count(), 2 * INSERT_COLUMNS.len());
        assert!(
            insert(pg, 2).contains("CAST($10 AS BYTEA), CAST($11 AS TEXT),"),
            "{}",
            insert(pg, 2)
        );
        assert_eq!(
            advance(pg, 3).matches('$').count(),
            3 * ADVANCE_COLUMNS.len()
        );
        assert_eq!(rotate(4).matches('$').count(), 4 * ROTATE_COLUMNS.len());
        assert!(rotate(4).contains(&format!("CAST(${} AS BIGINT))", 4 * ROTATE_COLUMNS.len())));
        assert!(load(pg, MAX_BATCH).contains(&format!("${MAX_BATCH})")));
        assert_eq!(lock(Backend::Sqlite, 3), None);
    }

    #[test]
    fn sqlite_parameters_are_positional() {
        let lite = Backend::Sqlite;
        assert!(!insert(lite, 2).contains('$'));
        assert_eq!(
            insert(lite, 2).matches('?').count(),
            2 * INSERT_COLUMNS.len()
        );
        assert_eq!(
            advance(lite, 3).matches('?').count(),
            3 * ADVANCE_COLUMNS.len()
        );
        assert_eq!(load(lite, 5).matches('?').count(), 5);
    }

    #[test]
    fn the_one_row_statements_take_every_column_once() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mark = if backend == Backend::Sqlite { '?' } else { '$' };
            let advance = advance_one(backend);
            for i in 1..=ADVANCE_COLUMNS.len() {
                let p = format!("{mark}{i}");
                let uses = advance.match_indices(&p).filter(|(at, _)| {
                    !advance[at + p.len()..].starts_with(|c: char| c.is_ascii_digit())
                });
                assert_eq!(uses.count(), 1, "{p} in {advance}");
            }
            assert!(advance.contains("sessions.head_token_id = "), "{advance}");
            assert!(!advance.contains("FROM v"), "{advance}");
        }
        assert_eq!(
            insert_one(Backend::Sqlite).matches('?').count(),
            INSERT_COLUMNS.len()
        );
    }

    #[test]
    fn a_family_is_read_from_every_column_of_the_load() {
        assert_eq!(FAMILY_COLUMNS.split(',').count(), 24);
    }
}
