//! Sessions as people see them: devices, states, signals, the rotation chain, and revocation by
//! the account holder or by support staff.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::{self, Actor};
use super::chains::{self, ChainLink};
use super::events::{self, Audit, Event, EventKind, NewEvent, Severity};
use super::revocation;
use super::{Origin, Result};
use crate::clock::{secs, Millis};
use crate::db::{Db, Tx};

use latchkey_proto::{ClientId, RevokedBy, SessionId, Timestamp, UserId};
pub use latchkey_proto::{
    Device, Family, Generation, LinkState, Place, Revocation, SessionState, SessionView,
};

const COLUMNS: &str = "s.id, s.user_id, s.client_id, c.name AS app, s.scope, s.device_name, s.device_platform, \
     s.app_version, s.created_at, s.last_used_at, s.expires_at, s.first_ip, s.first_user_agent, s.last_ip, \
     s.last_user_agent, s.generation, s.revoked_at, s.revoked_by, s.revoke_reason, s.dpop_jkt";

fn view(row: &AnyRow, idle: Millis, now: Millis) -> Result<SessionView> {
    let last_used_at: i64 = row.try_get("last_used_at")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let state = match revoked_at {
        Some(_) => SessionState::Revoked,
        None if expires_at <= now || last_used_at + idle <= now => SessionState::Expired,
        None => SessionState::Active,
    };
    let client_id: String = row.try_get("client_id")?;
    Ok(SessionView {
        id: SessionId::from(row.try_get::<String, _>("id")?),
        user_id: UserId::from(row.try_get::<String, _>("user_id")?),
        app: row
            .try_get::<Option<String>, _>("app")?
            .unwrap_or_else(|| client_id.clone()),
        client_id: ClientId::from(client_id),
        device: Device {
            name: row.try_get("device_name")?,
            platform: row.try_get("device_platform")?,
            app_version: row.try_get("app_version")?,
        },
        scope: row.try_get("scope")?,
        signed_in_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_used_at: Timestamp::from_millis(last_used_at),
        expires_at: Timestamp::from_millis(expires_at),
        first_seen: Place {
            ip: row.try_get("first_ip")?,
            user_agent: row.try_get("first_user_agent")?,
        },
        last_seen: Place {
            ip: row.try_get("last_ip")?,
            user_agent: row.try_get("last_user_agent")?,
        },
        state,
        key_thumbprint: row.try_get("dpop_jkt")?,
        revoked: match revoked_at {
            Some(at) => {
                let by: Option<String> = row.try_get("revoked_by")?;
                // Stored as `kind:id`; the kind is what a device list shows.
                let kind = match by.as_deref().map(|b| b.split(':').next().unwrap_or(b)) {
                    Some(kind) => super::parse_named("revoked_by", kind)?,
                    None => RevokedBy::System,
                };
                Some(Revocation {
                    at: Timestamp::from_millis(at),
                    by: kind,
                    reason: row.try_get("revoke_reason")?,
                })
            }
            None => None,
        },
        generation: row.try_get("generation")?,
        suspicious: false,
        signals: Vec::new(),
        current: false,
    })
}

fn attach_signals(sessions: &mut [SessionView], mut open: Vec<Event>) {
    for s in sessions.iter_mut() {
        let (mine, rest): (Vec<_>, Vec<_>) = open
            .into_iter()
            .partition(|e| e.session_id.as_ref() == Some(&s.id));
        open = rest;
        s.suspicious = mine.iter().any(Event::is_alarming);
        s.signals = mine;
    }
}

/// Every session of an account, most recently used first, with its open signals.
pub async fn for_user(
    db: &Db,
    user_id: &str,
    idle: Millis,
    now: Millis,
) -> Result<Vec<SessionView>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sessions s LEFT JOIN clients c ON c.client_id = s.client_id \
         WHERE s.user_id = $1 ORDER BY s.last_used_at DESC, s.id DESC"
    ))
    .bind(user_id)
    .fetch_all(db.read())
    .await?;
    let mut sessions = rows
        .iter()
        .map(|r| view(r, idle, now))
        .collect::<Result<Vec<_>>>()?;
    attach_signals(&mut sessions, events::open_signals(db, user_id).await?);
    Ok(sessions)
}

pub async fn find(
    db: &Db,
    session_id: &str,
    idle: Millis,
    now: Millis,
) -> Result<Option<SessionView>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sessions s LEFT JOIN clients c ON c.client_id = s.client_id WHERE s.id = $1"
    ))
    .bind(session_id)
    .fetch_optional(db.read())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut session = view(&row, idle, now)?;
    let open = events::open_signals_of_session(db, &session.id).await?;
    attach_signals(std::slice::from_mut(&mut session), open);
    Ok(Some(session))
}

/// Minimal facts about a session, for access checks on every API call.
#[derive(Debug, Clone)]
pub struct Liveness {
    pub user_id: String,
    pub revoked: bool,
}

pub async fn liveness(db: &Db, session_id: &str) -> Result<Option<Liveness>> {
    let row = sqlx::query("SELECT user_id, revoked_at FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(db.read())
        .await?;
    row.map(|r| {
        Ok(Liveness {
            user_id: r.try_get("user_id")?,
            revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        })
    })
    .transpose()
}

/// Revokes every live session of the account but `keep`, inside `tx`; the ids revoked.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn revoke_all_in(
    tx: &mut Tx,
    user_id: &str,
    keep: Option<&str>,
    actor: Actor<'_>,
    reason: &str,
    origin: &Origin,
    now: Millis,
    audit: Audit<'_>,
) -> Result<Vec<String>> {
    // Every session's row is locked before any event is recorded: recording takes the audit
    // head, and a refresh takes its session before the audit head, so taking sessions one by
    // one while holding the audit head could deadlock with one.
    let mut ids: Vec<String> = sqlx::query(
        "SELECT id FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2) AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(keep)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<std::result::Result<_, _>>()?;
    ids.sort();
    revocation::lock_sessions(tx, &ids).await?;
    let mut revoked = Vec::new();
    for id in ids {
        if revocation::revoke_and_record(tx, &id, actor, reason, origin, now, audit, None).await? {
            revoked.push(id);
        }
    }
    Ok(revoked)
}

/// Signs out every other live session of the account; the ids revoked.
pub async fn revoke_others(
    db: &Db,
    user_id: &str,
    keep: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Vec<String>> {
    let mut tx = db.begin_write().await?;
    let actor = Actor::User(user_id);
    let revoked = revoke_all_in(
        &mut tx,
        user_id,
        Some(keep),
        actor,
        "signed_out_by_another_device",
        origin,
        now,
        Audit::As(actor),
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// "This was me": clears the session's open signals; how many were cleared.
pub async fn acknowledge(
    db: &Db,
    user_id: &str,
    session_id: &str,
    origin: &Origin,
    now: Millis,
) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let cleared =
        events::acknowledge(&mut tx, session_id, &Actor::User(user_id).tag(), now).await?;
    events::record(
        &mut tx,
        NewEvent {
            kind: EventKind::SignalAcknowledged,
            severity: Severity::Info,
            user_id: Some(user_id),
            session_id: Some(session_id),
            origin,
            details: json!({ "signals_cleared": cleared }),
            audit: Audit::As(Actor::User(user_id)),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(cleared)
}

/// A staff revocation of one session: the session's events, and one audit record with the
/// staff member's reason. `None` if the session does not exist.
pub async fn staff_revoke(
    db: &Db,
    staff_id: &str,
    session_id: &str,
    reason: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Option<bool>> {
    let mut tx = db.begin_write().await?;
    let owner = sqlx::query("SELECT user_id FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(owner) = owner else { return Ok(None) };
    let user_id: String = owner.try_get("user_id")?;
    let actor = Actor::Support(staff_id);
    let revoked = revocation::revoke_and_record(
        &mut tx,
        session_id,
        actor,
        reason,
        origin,
        now,
        Audit::Covered,
        None,
    )
    .await?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor,
            action: "admin.session.revoke",
            target_user_id: Some(&user_id),
            target_session_id: Some(session_id),
            reason: Some(reason),
            origin,
            details: json!({ "was_active": revoked }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(revoked))
}

/// Global Token Revocation (draft-parecki-oauth-global-token-revocation): a trusted service
/// account ends every session of a user, so that nothing of theirs works until they sign in
/// again. The sessions revoked.
pub async fn service_revoke_all(
    db: &Db,
    client_id: &str,
    user_id: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Vec<String>> {
    let mut tx = db.begin_write().await?;
    let actor = Actor::Client(client_id);
    let revoked = revoke_all_in(
        &mut tx,
        user_id,
        None,
        actor,
        GLOBAL_TOKEN_REVOCATION,
        origin,
        now,
        Audit::As(actor),
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// The reason recorded for a Global Token Revocation.
pub const GLOBAL_TOKEN_REVOCATION: &str = "global_token_revocation";

/// A staff revocation of every live session of an account; the ids revoked.
pub async fn staff_revoke_all(
    db: &Db,
    staff_id: &str,
    user_id: &str,
    reason: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Vec<String>> {
    let mut tx = db.begin_write().await?;
    let actor = Actor::Support(staff_id);
    let revoked = revoke_all_in(
        &mut tx,
        user_id,
        None,
        actor,
        reason,
        origin,
        now,
        Audit::Covered,
    )
    .await?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor,
            action: "admin.user.revoke_all",
            target_user_id: Some(user_id),
            target_session_id: None,
            reason: Some(reason),
            origin,
            details: json!({ "revoked_sessions": revoked }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

fn generation_view(link: ChainLink, events: &[Event]) -> Generation {
    Generation {
        generation: link.generation,
        state: link.state,
        retired_reason: link.retired_reason,
        issued_at: Timestamp::from_millis(link.issued_at),
        issued_to: Place {
            ip: link.issued_ip,
            user_agent: link.issued_user_agent,
        },
        used_at: link.used_at.map(Timestamp::from_millis),
        used_by: link.used_at.map(|_| Place {
            ip: link.used_ip,
            user_agent: link.used_user_agent,
        }),
        expires_at: Timestamp::from_millis(link.expires_at),
        grace_replays: link.grace_replays,
        events: events
            .iter()
            .filter(|e| e.generation == Some(link.generation))
            .cloned()
            .collect(),
    }
}

pub async fn family(
    db: &Db,
    session: SessionView,
    before: Option<i64>,
    limit: i64,
) -> Result<Family> {
    let links = chains::chain_page(db, &session.id, session.generation, before, limit + 1).await?;
    let more = links.len() as i64 > limit;
    let events = events::list(
        db,
        &events::Filter {
            session_id: Some(session.id.to_string()),
            limit: 200,
            ..Default::default()
        },
    )
    .await?;
    let generations: Vec<Generation> = links
        .into_iter()
        .take(limit as usize)
        .map(|l| generation_view(l, &events))
        .collect();
    Ok(Family {
        next_before: more
            .then(|| generations.last().map(|g| g.generation))
            .flatten(),
        session,
        generations,
        events,
    })
}

/// The idle lifetime as milliseconds, for `view`.
pub fn idle(policy: &crate::config::TokenPolicy) -> Millis {
    secs(policy.family_idle_secs)
}
