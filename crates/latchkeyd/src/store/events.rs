//! Security events: what happened to a session or account, with its evidence.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::{self, Actor};
use super::{named, Origin, Result};
use crate::clock::Millis;
use crate::db::{Db, Tx};
use crate::secret::new_id;
use crate::signals;

pub use latchkey_proto::{EventKind, SecurityEvent as Event, Severity};
use latchkey_proto::{SessionId, Timestamp, UserId};

/// How an event reaches the audit log.
#[derive(Debug, Clone, Copy)]
pub enum Audit<'a> {
    /// As its own record, acted by this actor.
    As(Actor<'a>),
    /// Not separately: the caller appends one record for the whole action (a staff call
    /// leaves exactly one audit record, with its reason, however many events it causes).
    Covered,
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub severity: Severity,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub origin: &'a Origin,
    pub details: serde_json::Value,
    pub audit: Audit<'a>,
}

/// Records a security event, and its audit record, inside the caller's transaction.
pub async fn record(conn: &mut Tx, event: NewEvent<'_>, now: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO security_events (id, at, kind, severity, user_id, session_id, ip, user_agent, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(now)
    .bind(event.kind.as_str())
    .bind(event.severity.as_str())
    .bind(event.user_id)
    .bind(event.session_id)
    .bind(event.origin.ip.as_deref())
    .bind(event.origin.user_agent.as_deref())
    .bind(event.details.to_string())
    .execute(&mut **conn)
    .await?;
    if let Audit::As(actor) = event.audit {
        let reason = event.details.get("reason").and_then(|r| r.as_str());
        audit::append(
            conn,
            audit::Entry {
                actor,
                action: &format!("event.{}", event.kind),
                target_user_id: event.user_id,
                target_session_id: event.session_id,
                reason,
                origin: event.origin,
                details: json!({ "severity": event.severity.as_str(), "event": event.details }),
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Records a security event in a transaction of its own.
pub async fn record_alone(db: &Db, event: NewEvent<'_>, now: Millis) -> Result<()> {
    let mut tx = db.begin_write().await?;
    record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(())
}

const COLUMNS: &str =
    "id, at, kind, severity, user_id, session_id, ip, user_agent, details, acknowledged_at";

fn from_row(row: &AnyRow) -> Result<Event> {
    let kind: EventKind = named(row, "kind")?;
    let details: serde_json::Value =
        serde_json::from_str(&row.try_get::<String, _>("details")?).unwrap_or_default();
    let generation = ["generation", "replayed_generation", "presented_generation"]
        .iter()
        .find_map(|k| details.get(k).and_then(|g| g.as_i64()));
    Ok(Event {
        id: row.try_get("id")?,
        at: Timestamp::from_millis(row.try_get("at")?),
        summary: signals::describe(kind, &details),
        kind,
        severity: named(row, "severity")?,
        user_id: row
            .try_get::<Option<String>, _>("user_id")?
            .map(UserId::from),
        session_id: row
            .try_get::<Option<String>, _>("session_id")?
            .map(SessionId::from),
        generation,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        details,
        acknowledged_at: row
            .try_get::<Option<i64>, _>("acknowledged_at")?
            .map(Timestamp::from_millis),
    })
}

/// Events of one session, oldest first.
pub async fn for_session(db: &Db, session_id: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM security_events WHERE session_id = $1 ORDER BY at, id"
    ))
    .bind(session_id)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub kind: Option<String>,
    pub severity: Option<String>,
    pub since: Option<Millis>,
    /// The paging cursor: only events before this one (time, id).
    pub before: Option<(Millis, String)>,
    pub limit: i64,
}

pub async fn list(db: &Db, f: &Filter) -> Result<Vec<Event>> {
    let (before_at, before_id) = match &f.before {
        Some((at, id)) => (Some(*at), Some(id.as_str())),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM security_events WHERE ($1 IS NULL OR user_id = $1)          AND ($2 IS NULL OR session_id = $2) AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR severity = $4)          AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6 OR (at = $6 AND id < $7))          ORDER BY at DESC, id DESC LIMIT $8"
    ))
    .bind(f.user_id.as_deref())
    .bind(f.session_id.as_deref())
    .bind(f.kind.as_deref())
    .bind(f.severity.as_deref())
    .bind(f.since)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Events of any account after the `(at, id)` cursor `after` (and up to `until`, inclusive),
/// oldest first: the live stream's poll. Events of no account are never streamed.
pub async fn for_streams_after(
    db: &Db,
    after: (Millis, &str),
    until: Option<&(Millis, String)>,
    limit: i64,
) -> Result<Vec<Event>> {
    let (until_at, until_id) = match until {
        Some((at, id)) => (Some(*at), Some(id.as_str())),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM security_events WHERE user_id IS NOT NULL \
         AND (at > $1 OR (at = $1 AND id > $2)) \
         AND ($3 IS NULL OR at < $3 OR (at = $3 AND id <= $4)) \
         ORDER BY at, id LIMIT $5"
    ))
    .bind(after.0)
    .bind(after.1)
    .bind(until_at)
    .bind(until_id)
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Unacknowledged signals of a user's sessions, oldest first.
pub async fn open_signals(db: &Db, user_id: &str) -> Result<Vec<Event>> {
    open_signals_where(db, "user_id = $1 AND session_id IS NOT NULL", user_id).await
}

/// Unacknowledged signals of one session, oldest first.
pub async fn open_signals_of_session(db: &Db, session_id: &str) -> Result<Vec<Event>> {
    open_signals_where(db, "session_id = $1", session_id).await
}

async fn open_signals_where(db: &Db, scope: &str, key: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM security_events WHERE {scope} AND acknowledged_at IS NULL \
         AND kind IN ({}) ORDER BY at, id",
        *signals::SQL_KINDS
    ))
    .bind(key)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(from_row).collect()
}

/// "This was me": marks the session's open signals acknowledged; how many there were.
pub async fn acknowledge(conn: &mut Tx, session_id: &str, by: &str, now: Millis) -> Result<u64> {
    let done = sqlx::query(&format!(
        "UPDATE security_events SET acknowledged_at = $1, acknowledged_by = $2 \
         WHERE session_id = $3 AND acknowledged_at IS NULL AND kind IN ({})",
        *signals::SQL_KINDS
    ))
    .bind(now)
    .bind(by)
    .bind(session_id)
    .execute(&mut **conn)
    .await?;
    Ok(done.rows_affected())
}
