//! Shared Signals streams and their outbox (SSF 1.0 §8.1, RFC 8936).
//!
//! A stream belongs to the service account that created it. A session revocation is written
//! as one event, with one outbox row for every stream that wants it, in the revoking
//! transaction (`revocation::revoke_and_record` calls [`session_revoked`]): it is delivered
//! only if the revocation committed, and waits in the outbox until its receiver acknowledges
//! it or it expires, whatever restarts in between. What a SET says on the wire is `crate::ssf`'s
//! business; this keeps the facts.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AnyPool, Row};

use super::audit::Actor;
use super::{param, placeholders, Result, StoreError};
use crate::clock::{secs, Millis};
use crate::db::{Db, Tx};
use crate::secret::new_id;

/// How long an event waits for its receiver.
pub const RETENTION: Millis = 7 * 24 * 3600 * 1000;

/// The most streams one service account may have: each is a copy of every event.
pub const MAX_STREAMS_PER_CLIENT: i64 = 16;

/// The kinds of event an outbox holds.
pub const SESSION_REVOKED: &str = "session_revoked";
pub const VERIFICATION: &str = "verification";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Enabled,
    /// Events are kept for when the stream is enabled again (SSF 1.0 §8.1.2).
    Paused,
    /// Events are not kept.
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Paused => "paused",
            Status::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "paused" => Status::Paused,
            "disabled" => Status::Disabled,
            _ => Status::Enabled,
        }
    }
}

/// A stream as stored.
#[derive(Debug, Clone)]
pub struct Stream {
    pub id: String,
    pub client_id: String,
    pub delivery_method: String,
    pub endpoint_url: Option<String>,
    /// Push: the receiver's `Authorization` header for its endpoint, sealed (never in the clear
    /// at rest, never shown again).
    pub authorization_header: Option<Vec<u8>>,
    /// The kinds of event (of this module's constants) its receiver asked for.
    pub events_requested: Vec<String>,
    pub description: Option<String>,
    pub status: Status,
    pub status_reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What a receiver sets on its stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub delivery_method: String,
    pub endpoint_url: Option<String>,
    /// Sealed, as [`Stream::authorization_header`].
    pub authorization_header: Option<Vec<u8>>,
    pub events_requested: Vec<String>,
    pub description: Option<String>,
}

const COLUMNS: &str = "id, client_id, delivery_method, endpoint_url, authorization_header, \
     events_requested, description, status, status_reason, created_at, updated_at";

fn stream_from_row(row: &sqlx::any::AnyRow) -> Result<Stream> {
    Ok(Stream {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        delivery_method: row.try_get("delivery_method")?,
        endpoint_url: row.try_get("endpoint_url")?,
        authorization_header: row.try_get("authorization_header")?,
        events_requested: row
            .try_get::<String, _>("events_requested")?
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        description: row.try_get("description")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        status_reason: row.try_get("status_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Creates stream `id` (the caller's [`new_id`], which a sealed header is bound to).
pub async fn create(
    db: &Db,
    id: &str,
    client_id: &str,
    settings: &StreamSettings,
    now: Millis,
) -> Result<Stream> {
    let mut tx = db.begin_write().await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ssf_streams WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if count >= MAX_STREAMS_PER_CLIENT {
        return Err(StoreError::Conflict(format!(
            "a receiver may have at most {MAX_STREAMS_PER_CLIENT} streams: delete one first"
        )));
    }
    sqlx::query(
        "INSERT INTO ssf_streams (id, client_id, delivery_method, endpoint_url, authorization_header, \
         events_requested, description, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'enabled', $8, $8)",
    )
    .bind(id)
    .bind(client_id)
    .bind(&settings.delivery_method)
    .bind(settings.endpoint_url.as_deref())
    .bind(settings.authorization_header.as_deref())
    .bind(settings.events_requested.join(" "))
    .bind(settings.description.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Stream {
        id: id.to_string(),
        client_id: client_id.to_string(),
        delivery_method: settings.delivery_method.clone(),
        endpoint_url: settings.endpoint_url.clone(),
        authorization_header: settings.authorization_header.clone(),
        events_requested: settings.events_requested.clone(),
        description: settings.description.clone(),
        status: Status::Enabled,
        status_reason: None,
        created_at: now,
        updated_at: now,
    })
}

/// The client's stream, or `None` if it has no stream of that id (another client's included).
pub async fn find(db: &Db, client_id: &str, stream_id: &str) -> Result<Option<Stream>> {
    find_on(db.read(), client_id, stream_id).await
}

async fn find_on(pool: &AnyPool, client_id: &str, stream_id: &str) -> Result<Option<Stream>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ssf_streams WHERE id = $1 AND client_id = $2"
    ))
    .bind(stream_id)
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(stream_from_row).transpose()
}

pub async fn list(db: &Db, client_id: &str) -> Result<Vec<Stream>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM ssf_streams WHERE client_id = $1 ORDER BY created_at, id"
    ))
    .bind(client_id)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(stream_from_row).collect()
}

/// Sets what the receiver controls; `None` if the client has no such stream.
pub async fn update(
    db: &Db,
    client_id: &str,
    stream_id: &str,
    settings: &StreamSettings,
    now: Millis,
) -> Result<Option<Stream>> {
    let done = sqlx::query(
        "UPDATE ssf_streams SET delivery_method = $1, endpoint_url = $2, authorization_header = $3, \
         events_requested = $4, description = $5, updated_at = $6 WHERE id = $7 AND client_id = $8",
    )
    .bind(&settings.delivery_method)
    .bind(settings.endpoint_url.as_deref())
    .bind(settings.authorization_header.as_deref())
    .bind(settings.events_requested.join(" "))
    .bind(settings.description.as_deref())
    .bind(now)
    .bind(stream_id)
    .bind(client_id)
    .execute(db.write())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    find_written(db, client_id, stream_id).await
}

/// Reads a stream through the write pool: what was just written, whichever replica reads.
async fn find_written(db: &Db, client_id: &str, stream_id: &str) -> Result<Option<Stream>> {
    find_on(db.write(), client_id, stream_id).await
}

/// Deletes a stream and whatever waits in it; false if the client has no such stream.
pub async fn delete(db: &Db, client_id: &str, stream_id: &str) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("DELETE FROM ssf_streams WHERE id = $1 AND client_id = $2")
        .bind(stream_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 1 {
        sqlx::query("DELETE FROM ssf_outbox WHERE stream_id = $1")
            .bind(stream_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a stream's status; `None` if the client has no such stream. Disabling drops what
/// waits in it (SSF 1.0 §8.1.2: a disabled stream keeps no events).
pub async fn set_status(
    db: &Db,
    client_id: &str,
    stream_id: &str,
    status: Status,
    reason: Option<&str>,
    now: Millis,
) -> Result<Option<Stream>> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE ssf_streams SET status = $1, status_reason = $2, updated_at = $3 \
         WHERE id = $4 AND client_id = $5",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(now)
    .bind(stream_id)
    .bind(client_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    if status == Status::Disabled {
        sqlx::query("DELETE FROM ssf_outbox WHERE stream_id = $1")
            .bind(stream_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    find_written(db, client_id, stream_id).await
}

/// Who ended a session, in CAEP's words (CAEP 1.0 §3.1 `initiating_entity`).
fn initiating_entity(actor: Actor<'_>, reason: &str) -> &'static str {
    match actor {
        // A security tool or identity provider ends every session of a user.
        Actor::Client(_) if reason == super::sessions::GLOBAL_TOKEN_REVOCATION => "admin",
        // RFC 7009 and sign-out: an app ends its user's session for them.
        Actor::User(_) | Actor::Client(_) => "user",
        Actor::Support(_) | Actor::Operator(_) => "admin",
        Actor::System if reason == "session_limit" => "policy",
        Actor::System => "system",
    }
}

/// Writes a session's revocation to the outbox of every stream that wants it, inside the
/// revoking transaction.
pub(crate) async fn session_revoked(
    tx: &mut Tx,
    user_id: &str,
    session_id: &str,
    actor: Actor<'_>,
    reason: &str,
    now: Millis,
) -> Result<()> {
    let payload = json!({
        "user_id": user_id,
        "session_id": session_id,
        "initiating_entity": initiating_entity(actor, reason),
        "reason": reason,
    });
    enqueue(tx, SESSION_REVOKED, &payload, None, now).await
}

/// A verification event (SSF 1.0 §8.1.4) for one stream, whatever it asked for.
///
/// A receiver that asks for one is listening: whatever waits in its stream is due at once
/// rather than after the backoff its earlier failures earned, so a push receiver that comes
/// back gets what it missed before the verification event (which proves it is current). An
/// event another replica is pushing right now may so arrive twice; receivers tell SETs apart
/// by `jti` (RFC 8935 §2), and a revocation taken twice is one revocation.
pub async fn verify(db: &Db, stream_id: &str, state: Option<&str>, now: Millis) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE ssf_outbox SET next_attempt_at = $1 WHERE stream_id = $2 AND next_attempt_at > $1",
    )
    .bind(now)
    .bind(stream_id)
    .execute(&mut *tx)
    .await?;
    enqueue(
        &mut tx,
        VERIFICATION,
        &json!({ "state": state }),
        Some(stream_id),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Writes one event, and an outbox row for each stream it goes to: `only` that stream, or
/// every stream kept (enabled or paused) that asked for `kind`. Nothing when none does.
async fn enqueue(
    tx: &mut Tx,
    kind: &str,
    payload: &serde_json::Value,
    only: Option<&str>,
    now: Millis,
) -> Result<()> {
    let streams: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => sqlx::query(
            "SELECT id FROM ssf_streams WHERE status <> 'disabled' \
             AND (' ' || events_requested || ' ') LIKE $1",
        )
        .bind(format!("% {kind} %"))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?,
    };
    if streams.is_empty() {
        return Ok(());
    }
    let event_id = new_id();
    sqlx::query("INSERT INTO ssf_events (id, at, kind, payload) VALUES ($1, $2, $3, $4)")
        .bind(&event_id)
        .bind(now)
        .bind(kind)
        .bind(payload.to_string())
        .execute(&mut **tx)
        .await?;
    for stream_id in streams {
        // One SET per stream and event: its jti names both.
        sqlx::query(
            "INSERT INTO ssf_outbox (stream_id, jti, event_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&stream_id)
        .bind(format!("{event_id}.{stream_id}"))
        .bind(&event_id)
        .bind(now)
        .bind(now + RETENTION)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// An event waiting in a stream's outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub jti: String,
    pub kind: String,
    pub at: Millis,
    pub payload: serde_json::Value,
}

/// Drops the acknowledged events of a stream, then returns up to `max` of those still waiting,
/// oldest first, and whether more wait (RFC 8936 §2.4).
pub async fn poll(
    db: &Db,
    stream_id: &str,
    ack: &[String],
    max: usize,
    now: Millis,
) -> Result<(Vec<Pending>, bool)> {
    if !ack.is_empty() {
        let mut tx = db.begin_write().await?;
        for chunk in ack.chunks(500) {
            // Every parameter written by `param`: SQLite numbers a bare `?` after a `$1`.
            let backend = tx.backend();
            let sql = format!(
                "DELETE FROM ssf_outbox WHERE stream_id = {} AND jti IN ({})",
                param(backend, 1),
                placeholders(backend, 2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(stream_id);
            for jti in chunk {
                query = query.bind(jti);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    if max == 0 {
        return Ok((Vec::new(), false));
    }
    let rows = sqlx::query(
        "SELECT o.jti, e.kind, e.at, e.payload FROM ssf_outbox o JOIN ssf_events e ON e.id = o.event_id \
         WHERE o.stream_id = $1 AND o.expires_at > $2 ORDER BY o.created_at, o.jti LIMIT $3",
    )
    .bind(stream_id)
    .bind(now)
    .bind(max as i64 + 1)
    .fetch_all(db.write())
    .await?;
    let mut pending = rows
        .iter()
        .map(|row| {
            let payload: String = row.try_get("payload")?;
            Ok(Pending {
                jti: row.try_get("jti")?,
                kind: row.try_get("kind")?,
                at: row.try_get("at")?,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let more = pending.len() > max;
    pending.truncate(max);
    Ok((pending, more))
}

/// An event due to be pushed to its stream's receiver (RFC 8935).
#[derive(Debug, Clone)]
pub struct Push {
    pub stream_id: String,
    pub client_id: String,
    pub endpoint_url: String,
    pub authorization_header: Option<Vec<u8>>,
    pub attempts: i64,
    pub event: Pending,
}

/// How long a push is left to the replica that claimed it before another may try it.
pub const PUSH_LEASE: Millis = 60_000;

/// Claims up to `limit` events due to be pushed (enabled push streams, attempt due, not
/// expired), oldest first: each is leased to this caller for [`PUSH_LEASE`], so replicas do not
/// push one event twice at once. PostgreSQL skips rows another replica is claiming.
pub async fn claim_pushes(db: &Db, limit: i64, now: Millis) -> Result<Vec<Push>> {
    // Most of the time nothing is due: find that out without the write lock, which on SQLite
    // the rotation writer wants.
    let due = sqlx::query(
        "SELECT 1 FROM ssf_outbox o JOIN ssf_streams s ON s.id = o.stream_id \
         WHERE s.delivery_method = $1 AND s.status = 'enabled' AND o.next_attempt_at <= $2 \
         AND o.expires_at > $2 LIMIT 1",
    )
    .bind(crate::ssf::PUSH)
    .bind(now)
    .fetch_optional(db.read())
    .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin_write().await?;
    let skip_locked = match tx.backend() {
        crate::db::Backend::Postgres => " FOR UPDATE OF o SKIP LOCKED",
        crate::db::Backend::Sqlite => "",
    };
    let rows = sqlx::query(&format!(
        "SELECT o.stream_id, o.jti, o.attempts, e.kind, e.at, e.payload, s.client_id, s.endpoint_url, \
         s.authorization_header FROM ssf_outbox o JOIN ssf_streams s ON s.id = o.stream_id \
         JOIN ssf_events e ON e.id = o.event_id \
         WHERE s.delivery_method = $1 AND s.status = 'enabled' AND s.endpoint_url IS NOT NULL \
         AND o.next_attempt_at <= $2 AND o.expires_at > $2 \
         ORDER BY o.created_at, o.jti LIMIT $3{skip_locked}"
    ))
    .bind(crate::ssf::PUSH)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut pushes = Vec::with_capacity(rows.len());
    for row in &rows {
        let push = Push {
            stream_id: row.try_get("stream_id")?,
            client_id: row.try_get("client_id")?,
            endpoint_url: row.try_get("endpoint_url")?,
            authorization_header: row.try_get("authorization_header")?,
            attempts: row.try_get("attempts")?,
            event: Pending {
                jti: row.try_get("jti")?,
                kind: row.try_get("kind")?,
                at: row.try_get("at")?,
                payload: serde_json::from_str(&row.try_get::<String, _>("payload")?)
                    .unwrap_or(serde_json::Value::Null),
            },
        };
        sqlx::query("UPDATE ssf_outbox SET next_attempt_at = $1 WHERE stream_id = $2 AND jti = $3")
            .bind(now + PUSH_LEASE)
            .bind(&push.stream_id)
            .bind(&push.event.jti)
            .execute(&mut *tx)
            .await?;
        pushes.push(push);
    }
    tx.commit().await?;
    Ok(pushes)
}

/// The receiver took the event (or refused it for good): it leaves the outbox.
pub async fn pushed(db: &Db, stream_id: &str, jti: &str) -> Result<()> {
    sqlx::query("DELETE FROM ssf_outbox WHERE stream_id = $1 AND jti = $2")
        .bind(stream_id)
        .bind(jti)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Puts a claimed event back, to be tried at `next_at`: `Retry::Failed` counts an attempt that
/// failed, `Retry::Untried` one never made (an earlier event of its stream failed first).
pub async fn retry_at(
    db: &Db,
    stream_id: &str,
    jti: &str,
    next_at: Millis,
    why: Retry,
) -> Result<()> {
    sqlx::query(
        "UPDATE ssf_outbox SET attempts = attempts + $1, next_attempt_at = $2 \
         WHERE stream_id = $3 AND jti = $4",
    )
    .bind(i64::from(why == Retry::Failed))
    .bind(next_at)
    .bind(stream_id)
    .bind(jti)
    .execute(db.write())
    .await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Retry {
    Failed,
    Untried,
}

/// Deletes expired outbox rows and the events no outbox holds any more.
pub(crate) async fn prune(tx: &mut Tx, now: Millis) -> Result<()> {
    sqlx::query("DELETE FROM ssf_outbox WHERE expires_at < $1")
        .bind(now)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM ssf_events WHERE at < $1 AND NOT EXISTS \
         (SELECT 1 FROM ssf_outbox o WHERE o.event_id = ssf_events.id)",
    )
    .bind(now - secs(60))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
