//! Revocation: of sessions (and so their families), of single access tokens, and what the
//! resource side asks about both.

use serde_json::json;
use sqlx::Row;

use super::audit::Actor;
use super::events::{self, Audit, EventKind, NewEvent, Severity};
use super::ssf;
use super::{placeholders, Origin, Result};
use crate::clock::Millis;
use crate::db::{Backend, Db, Tx};
use crate::secret::parse_refresh_token;

/// Revokes a session inside `tx`, and so its family: a token is live only while its session is.
/// Only `revoke_and_record` calls it: every revocation leaves a `session_revoked` event, which
/// is what ends the session's live streams and tells its devices.
async fn revoke_session_in(
    tx: &mut Tx,
    session_id: &str,
    by: &str,
    reason: &str,
    now: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_by = $2, revoke_reason = $3 WHERE id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(reason)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the rows of these sessions, in id order: the order every path that holds more than
/// one session takes them in (the rotation writer takes a batch's the same way), always before
/// the audit head. Two transactions that each took two sessions in their own order could each
/// wait for the other. On SQLite the write transaction already holds the whole database.
pub(crate) async fn lock_sessions(tx: &mut Tx, ids: &[String]) -> Result<()> {
    if tx.backend() != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    debug_assert!(ids.windows(2).all(|w| w[0] <= w[1]), "ids must be sorted");
    // Chunks in order keep the order; each stays far below PostgreSQL's parameter limit.
    for chunk in ids.chunks(1000) {
        let sql = format!(
            "SELECT id FROM sessions WHERE id IN ({}) ORDER BY id FOR UPDATE",
            placeholders(Backend::Postgres, 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        query.fetch_all(&mut **tx).await?;
    }
    Ok(())
}

/// Revokes a session (and so its family) and records who did it and why.
pub async fn revoke_session(
    db: &Db,
    session_id: &str,
    actor: Actor<'_>,
    reason: &str,
    origin: &Origin,
    now: Millis,
) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let revoked = revoke_and_record(
        &mut tx,
        session_id,
        actor,
        reason,
        origin,
        now,
        Audit::As(actor),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Revokes a session inside `tx` and records why: first its `cause` (the signal that led to
/// it, if any; `details.session_revoked` says whether this call ended the session), then a
/// `session_revoked` event if the session was live, so a live stream shows the cause before it
/// ends. The one way a session is revoked, whoever or whatever revokes it. The session's row is
/// taken first, then the audit head (the lock order every path keeps).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn revoke_and_record(
    tx: &mut Tx,
    session_id: &str,
    actor: Actor<'_>,
    reason: &str,
    origin: &Origin,
    now: Millis,
    audit: Audit<'_>,
    cause: Option<NewEvent<'_>>,
) -> Result<bool> {
    let revoked = revoke_session_in(tx, session_id, &actor.tag(), reason, now).await?;
    if revoked {
        tx.revoked(session_id);
    }
    if let Some(mut cause) = cause {
        if let Some(details) = cause.details.as_object_mut() {
            details.insert("session_revoked".into(), json!(revoked));
        }
        events::record(tx, cause, now).await?;
    }
    if revoked {
        let user_id: Option<String> = sqlx::query("SELECT user_id FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("user_id"))
            .transpose()?;
        events::record(
            tx,
            NewEvent {
                kind: EventKind::SessionRevoked,
                severity: Severity::Info,
                user_id: user_id.as_deref(),
                session_id: Some(session_id),
                origin,
                details: json!({ "revoked_by": actor.kind(), "reason": reason }),
                audit,
            },
            now,
        )
        .await?;
        // The one domain event of a revocation, for the resource servers' receivers.
        if let Some(user_id) = &user_id {
            ssf::session_revoked(tx, user_id, session_id, actor, reason, now).await?;
        }
    }
    Ok(revoked)
}

/// What a refresh token is, for revocation and introspection.
#[derive(Debug, Clone)]
pub struct RefreshTokenInfo {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub active: bool,
    pub dpop_jkt: Option<String>,
}

pub async fn refresh_token_info(
    db: &Db,
    token: &str,
    now: Millis,
) -> Result<Option<RefreshTokenInfo>> {
    let Some(presented) = parse_refresh_token(token) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT t.session_id, t.issued_at, t.expires_at, s.user_id, s.client_id, s.scope, s.revoked_at, s.dpop_jkt, \
         s.head_token_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.id = $1 AND t.secret_hash = $2",
    )
    .bind(presented.id)
    .bind(&presented.secret_hash)
    .fetch_optional(db.read())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at")?;
    let active = row.try_get::<Option<i64>, _>("head_token_id")? == Some(presented.id)
        && expires_at > now
        && row.try_get::<Option<i64>, _>("revoked_at")?.is_none();
    Ok(Some(RefreshTokenInfo {
        session_id: row.try_get("session_id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        issued_at: row.try_get("issued_at")?,
        expires_at,
        active,
        dpop_jkt: row.try_get("dpop_jkt")?,
    }))
}

pub async fn revoke_access_token(db: &Db, jti: &str, expires_at: Millis) -> Result<()> {
    sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
        .bind(jti)
        .bind(expires_at)
        .execute(db.write())
        .await?;
    Ok(())
}

pub async fn access_token_revoked(db: &Db, jti: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT jti FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(db.read())
            .await?
            .is_some(),
    )
}
