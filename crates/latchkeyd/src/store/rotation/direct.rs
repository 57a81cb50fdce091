//! The SQLite writer's own connection, for the batches that only rotate.
//!
//! sqlx runs each SQLite statement on its connection's thread and hands every row back across
//! threads; a batch through it (begin, load, insert, advance, commit) costs a dozen thread
//! wake-ups, on the one writer every refresh waits for. Here the writer's thread holds a
//! connection of its own and runs a batch itself, with the same decisions (`plan.rs`). It
//! writes one row at a time (`sql::insert_one`, `sql::advance_one`): with no round trips to
//! save, the set-wide statements would only add SQLite's temporary tables for their rows. A
//! batch that needs more than successors and heads written (an event to record, a family to
//! revoke, a grace replay to count) is rolled back untouched and run through sqlx instead
//! (`writer.rs`), where every store function is at hand.
//!
//! The two connections are two writers on one file: each takes the write lock at its
//! transaction's start (`BEGIN IMMEDIATE`) and waits for the other through the busy timeout.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Row};

use super::decide::Family;
use super::plan::{distinct_tokens, plain_outcomes, plan, rotations, Pending, Plan};
use super::sql::{self, Columns, Value};
use super::RotationPolicy;
use crate::clock::Millis;
use crate::db::Backend;
use crate::store::outcome::Outcome;

pub(super) struct Direct {
    conn: Connection,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum DirectError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// What the transaction wrote is not what it meant to: rolled back.
    #[error("{0}")]
    Inconsistent(String),
}

type Result<T> = std::result::Result<T, DirectError>;

impl Direct {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // As the pool's connections (`Db::connect`): a commit survives a crash of the process.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        // The load, the insert, the head's move, and the transaction's own two.
        conn.set_prepared_statement_cache_capacity(8);
        Ok(Self { conn })
    }

    /// Runs the batch in one transaction if it only rotates and refuses; `None` (nothing
    /// written) if it must be run through sqlx. An outcome is `None` where the refresh waits
    /// for the next batch.
    pub fn run(
        &mut self,
        policy: &RotationPolicy,
        batch: &[Pending],
        now: Millis,
    ) -> Result<Option<Vec<Option<Outcome>>>> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let result = self.rotate(policy, batch, now);
        if !matches!(result, Ok(Some(_))) && !self.conn.is_autocommit() {
            self.conn.prepare_cached("ROLLBACK")?.execute([])?;
        }
        result
    }

    fn rotate(
        &mut self,
        policy: &RotationPolicy,
        batch: &[Pending],
        now: Millis,
    ) -> Result<Option<Vec<Option<Outcome>>>> {
        let conn = &self.conn;
        let ids = distinct_tokens(batch);
        let mut families = HashMap::with_capacity(ids.len());
        {
            let mut load = conn.prepare_cached(sql::load(Backend::Sqlite, 1))?;
            for id in ids {
                load.raw_bind_parameter(1, id)?;
                let mut rows = load.raw_query();
                if let Some(row) = rows.next()? {
                    let f: Family = sql::family(row)?;
                    families.insert(f.token_id, f);
                }
            }
        }
        let plans = plan(policy, batch, &families, now);
        if !plans.iter().all(Plan::is_plain) {
            return Ok(None);
        }

        let granted = rotations(batch, &plans, &families);
        let mut heads = HashMap::with_capacity(granted.len());
        let mut insert = conn.prepare_cached(sql::insert_one(Backend::Sqlite))?;
        let mut advance = conn.prepare_cached(sql::advance_one(Backend::Sqlite))?;
        for g in &granted {
            bind(&mut insert, sql::insert_rows(std::slice::from_ref(g), now))?;
            insert.raw_execute()?;
            let (p, s, f) = *g;
            let head = conn.last_insert_rowid();
            bind(&mut advance, sql::advance_row(p, s, f, head, now))?;
            if advance.raw_execute()? != 1 {
                // The write transaction held the database since the load: this cannot happen
                // unless something changed the session without it. Nothing may stay.
                return Err(DirectError::Inconsistent(format!(
                    "session {} did not move in a rotation batch",
                    f.session_id
                )));
            }
            heads.insert(f.session_id.clone(), head);
        }
        let outcomes = plain_outcomes(batch, plans, &families, &heads);
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(Some(outcomes))
    }
}

fn bind<'a>(
    statement: &mut rusqlite::CachedStatement<'_>,
    values: impl IntoIterator<Item = Value<'a>>,
) -> rusqlite::Result<()> {
    for (i, value) in values.into_iter().enumerate() {
        let i = i + 1;
        match value {
            Value::Int(v) => statement.raw_bind_parameter(i, v)?,
            Value::MaybeInt(v) => statement.raw_bind_parameter(i, v)?,
            Value::Text(v) => statement.raw_bind_parameter(i, v)?,
            Value::MaybeText(v) => statement.raw_bind_parameter(i, v)?,
            Value::Blob(v) => statement.raw_bind_parameter(i, v)?,
        }
    }
    Ok(())
}

impl Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn maybe_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn maybe_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn blob(&self, i: usize) -> rusqlite::Result<Vec<u8>> {
        self.get(i)
    }
}
