//! Authorization requests, codes, sessions and their refresh-token families.
//!
//! A session is one sign-in on one device; its refresh tokens form one family. Rotation and
//! reuse detection each run in one transaction, so they stay correct across replicas. A token
//! is live only while it is its session's head (`sessions.head_token_id`), so a family cannot
//! hold two; the session UPDATE that moves the head is conditional on the head it read, which
//! lets exactly one of many concurrent refreshes win.

use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::Actor;
use super::events::{self, Audit, NewEvent, Severity};
use super::{Origin, Result};
use crate::clock::{secs, Millis};
use crate::config::TokenPolicy;
use crate::db::{Db, Tx};
use crate::secret::{
    new_id, new_refresh_secret, new_token, parse_refresh_token, pkce_s256_matches, refresh_token,
    token_hash, RefreshTokenRef, Secret, TokenKind,
};
use crate::signals::{PriorUse, Use};

/// What the client said about the device, from the authorization request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceInfo {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub id: String,
    pub browser_hash: Vec<u8>,
    pub csrf_hash: Vec<u8>,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub dpop_jkt: Option<String>,
    pub device: DeviceInfo,
    pub expires_at: Millis,
}

pub async fn create_auth_request(db: &Db, req: &AuthRequest, now: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_requests (id, browser_hash, csrf_hash, client_id, redirect_uri, scope, state, nonce, \
         code_challenge, device_name, device_platform, app_version, created_at, expires_at, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&req.id)
    .bind(&req.browser_hash)
    .bind(&req.csrf_hash)
    .bind(&req.client_id)
    .bind(&req.redirect_uri)
    .bind(&req.scope)
    .bind(req.state.as_deref())
    .bind(req.nonce.as_deref())
    .bind(&req.code_challenge)
    .bind(req.device.name.as_deref())
    .bind(req.device.platform.as_deref())
    .bind(req.device.app_version.as_deref())
    .bind(now)
    .bind(req.expires_at)
    .bind(req.dpop_jkt.as_deref())
    .execute(db.write())
    .await?;
    Ok(())
}

pub async fn find_auth_request(db: &Db, id: &str) -> Result<Option<AuthRequest>> {
    let row = sqlx::query(
        "SELECT id, browser_hash, csrf_hash, client_id, redirect_uri, scope, state, nonce, code_challenge, \
         device_name, device_platform, app_version, expires_at, dpop_jkt FROM auth_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(AuthRequest {
        id: row.try_get("id")?,
        browser_hash: row.try_get("browser_hash")?,
        csrf_hash: row.try_get("csrf_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        state: row.try_get("state")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        dpop_jkt: row.try_get("dpop_jkt")?,
        device: device_from_row(&row)?,
        expires_at: row.try_get("expires_at")?,
    }))
}

fn device_from_row(row: &AnyRow) -> Result<DeviceInfo> {
    Ok(DeviceInfo {
        name: row.try_get("device_name")?,
        platform: row.try_get("device_platform")?,
        app_version: row.try_get("app_version")?,
    })
}

pub async fn delete_auth_request(db: &Db, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM auth_requests WHERE id = $1")
        .bind(id)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Turns a completed sign-in into a single-use authorization code (stored as a hash);
/// `None` if the form was already used.
pub async fn issue_code(
    db: &Db,
    req: &AuthRequest,
    scope: &str,
    user_id: &str,
    origin: &Origin,
    policy: &TokenPolicy,
    now: Millis,
) -> Result<Option<Secret<String>>> {
    let code = new_token(TokenKind::AuthorizationCode);
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, user_id, scope, nonce, code_challenge, \
         device_name, device_platform, app_version, auth_time, ip, user_agent, created_at, expires_at, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(token_hash(code.expose()))
    .bind(&req.client_id)
    .bind(&req.redirect_uri)
    .bind(user_id)
    .bind(scope)
    .bind(req.nonce.as_deref())
    .bind(&req.code_challenge)
    .bind(req.device.name.as_deref())
    .bind(req.device.platform.as_deref())
    .bind(req.device.app_version.as_deref())
    .bind(now)
    .bind(origin.ip.as_deref())
    .bind(origin.user_agent.as_deref())
    .bind(now)
    .bind(now + secs(policy.auth_code_ttl_secs))
    .bind(req.dpop_jkt.as_deref())
    .execute(&mut *tx)
    .await?;
    // A form yields one code: of two concurrent submissions, the second finds it gone.
    let consumed = sqlx::query("DELETE FROM auth_requests WHERE id = $1")
        .bind(&req.id)
        .execute(&mut *tx)
        .await?;
    if consumed.rows_affected() != 1 {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(code))
}

/// A session with a fresh refresh token, as the token endpoint answers it.
#[derive(Debug)]
pub struct Grant {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: Millis,
    pub nonce: Option<String>,
    pub refresh_token: Secret<String>,
    pub refresh_expires_at: Millis,
    /// The thumbprint of the key the session (its refresh tokens) is bound to, if any.
    pub dpop_jkt: Option<String>,
    /// For a refresh: the use it follows, for the suspicion signals.
    pub used: Option<Use>,
}

/// One refresh-grant request, as the store sees it.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest<'a> {
    pub client_id: &'a str,
    /// A narrower scope asked for, if any.
    pub requested_scope: Option<&'a str>,
    pub key: KeyProof<'a>,
    pub origin: &'a Origin,
    pub now: Millis,
}

/// The key a token request proved possession of (DPoP), and what to do with a family bound to
/// another key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyProof<'a> {
    /// The proof's JWK thumbprint; `None` without a proof.
    pub jkt: Option<&'a str>,
    /// Bind a family that is not bound yet to this key (public clients, RFC 9449 §5).
    pub bind: bool,
    pub revoke_on_mismatch: bool,
}

/// Why a code or refresh token was refused; each becomes `invalid_grant` (or `invalid_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    /// The family was revoked earlier; nothing new was learned.
    Revoked,
    /// A retired token came back: the family has just been revoked.
    ReuseDetected,
    /// A used authorization code came back: what it issued has just been revoked.
    CodeReused,
    WrongClient,
    WrongRedirectUri,
    PkceFailed,
    ScopeNotGranted,
    /// The code was bound to a key (`dpop_jkt`) the request did not prove.
    CodeKeyMismatch,
    /// The family is bound to a key the request did not prove: recorded as `key_mismatch`.
    KeyMismatch,
    /// The account was disabled.
    AccountDisabled,
}

impl Refusal {
    pub fn description(self) -> &'static str {
        match self {
            Refusal::Unknown => "the grant is not recognised",
            Refusal::Expired => "the grant has expired",
            Refusal::Revoked => "the session of this refresh token was revoked",
            Refusal::ReuseDetected => {
                "this refresh token was already used; its session has been revoked to protect the account"
            }
            Refusal::CodeReused => {
                "this authorization code was already used; the tokens it issued have been revoked"
            }
            Refusal::WrongClient => "the grant was issued to another client",
            Refusal::WrongRedirectUri => "redirect_uri does not match the authorization request",
            Refusal::PkceFailed => "code_verifier does not match the code_challenge",
            Refusal::ScopeNotGranted => "the requested scope exceeds the scope originally granted",
            Refusal::CodeKeyMismatch => {
                "the authorization request named a DPoP key (dpop_jkt) that this request did not prove"
            }
            Refusal::AccountDisabled => "the account is disabled",
            Refusal::KeyMismatch => {
                "this refresh token is bound to another device's key; presenting it without that key looks like theft, and it has been recorded"
            }
        }
    }
}

pub type Outcome = std::result::Result<Grant, Refusal>;

/// RFC 6749 §4.1.3 with PKCE; a second redemption revokes what the first issued (§4.1.2).
/// What the client presents at the token endpoint to redeem a code.
pub struct CodeExchange<'a> {
    pub code: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: &'a str,
    /// The thumbprint of the key proved with the request (DPoP), if any.
    pub dpop_jkt: Option<&'a str>,
    /// Bind the new session's refresh tokens to that key (public clients, RFC 9449 §5).
    pub bind_refresh: bool,
}

pub async fn redeem_code(
    db: &Db,
    policy: &TokenPolicy,
    exchange: &CodeExchange<'_>,
    origin: &Origin,
    now: Millis,
) -> Result<Outcome> {
    let CodeExchange {
        code,
        client_id,
        redirect_uri,
        code_verifier,
        dpop_jkt,
        bind_refresh,
    } = *exchange;
    let hash = token_hash(code);
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE auth_codes SET redeemed_at = $1 WHERE code_hash = $2 AND redeemed_at IS NULL AND expires_at > $1 \
         RETURNING client_id, redirect_uri, user_id, scope, nonce, code_challenge, device_name, device_platform, \
         app_version, auth_time, ip, user_agent, dpop_jkt",
    )
    .bind(now)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;

    let Some(row) = row else {
        let used = sqlx::query(
            "SELECT redeemed_at, session_id, user_id, client_id FROM auth_codes WHERE code_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(used) = used else {
            return Ok(Err(Refusal::Unknown));
        };
        if used.try_get::<Option<i64>, _>("redeemed_at")?.is_none() {
            return Ok(Err(Refusal::Expired));
        }
        // Only the client the code was issued to can prove a replay; anyone else holding an
        // old code must not be able to end the session it started.
        if used.try_get::<String, _>("client_id")? != client_id {
            return Ok(Err(Refusal::WrongClient));
        }
        let session_id: Option<String> = used.try_get("session_id")?;
        let user_id: String = used.try_get("user_id")?;
        let detected = NewEvent {
            kind: "code_reuse_detected",
            severity: Severity::High,
            user_id: Some(&user_id),
            session_id: session_id.as_deref(),
            origin,
            details: json!({ "revoked_session": session_id }),
            audit: Audit::As(Actor::System),
        };
        match &session_id {
            Some(sid) => {
                revoke_and_record(
                    &mut tx,
                    sid,
                    Actor::System,
                    "authorization_code_reused",
                    origin,
                    now,
                    Audit::Covered,
                    Some(detected),
                )
                .await?;
            }
            None => events::record(&mut tx, detected, now).await?,
        }
        tx.commit().await?;
        return Ok(Err(Refusal::CodeReused));
    };

    // The code is spent from here on, whatever the checks below decide (no verifier guessing).
    let refusal = if row.try_get::<String, _>("client_id")? != client_id {
        Some(Refusal::WrongClient)
    } else if redirect_uri != Some(row.try_get::<String, _>("redirect_uri")?.as_str()) {
        Some(Refusal::WrongRedirectUri)
    } else if !pkce_s256_matches(code_verifier, &row.try_get::<String, _>("code_challenge")?) {
        Some(Refusal::PkceFailed)
    } else if row
        .try_get::<Option<String>, _>("dpop_jkt")?
        .is_some_and(|bound| Some(bound.as_str()) != dpop_jkt)
    {
        Some(Refusal::CodeKeyMismatch)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        tx.commit().await?;
        return Ok(Err(refusal));
    }

    let user_id: String = row.try_get("user_id")?;
    let scope: String = row.try_get("scope")?;
    let auth_time: i64 = row.try_get("auth_time")?;
    let device = device_from_row(&row)?;
    let session_id = new_id();

    // The account's row, taken as `users::set_disabled` takes it: a sign-in completed by a
    // disabled account gets no session, and one racing the disabling is either revoked by it
    // or refused here.
    let enabled = sqlx::query(
        "UPDATE users SET disabled_at = disabled_at WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    if enabled.rows_affected() != 1 {
        tx.commit().await?;
        return Ok(Err(Refusal::AccountDisabled));
    }

    enforce_session_limit(&mut tx, policy, &user_id, origin, now).await?;
    let new_device = is_new_device(&mut tx, &user_id, &device).await?;

    // Without offline_access no refresh token is handed out: the sign-in lasts as long as its
    // access token, and the device list says so.
    let lifetime = if crate::scope::contains(&scope, crate::scope::OFFLINE_ACCESS) {
        policy.family_lifetime_secs
    } else {
        policy.access_token_ttl_secs
    };
    let expires_at = now + secs(lifetime);
    let bound = dpop_jkt.filter(|_| bind_refresh);
    sqlx::query(
        "INSERT INTO sessions (id, user_id, client_id, scope, device_name, device_platform, app_version, auth_time, \
         created_at, expires_at, last_used_at, first_ip, first_user_agent, last_ip, last_user_agent, generation, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9, $11, $12, $11, $12, 1, $13)",
    )
    .bind(&session_id)
    .bind(&user_id)
    .bind(client_id)
    .bind(&scope)
    .bind(device.name.as_deref())
    .bind(device.platform.as_deref())
    .bind(device.app_version.as_deref())
    .bind(auth_time)
    .bind(now)
    .bind(expires_at)
    .bind(origin.ip.as_deref())
    .bind(origin.user_agent.as_deref())
    .bind(bound)
    .execute(&mut *tx)
    .await?;
    let (refresh_token, refresh_expires_at) = insert_refresh_token(
        &mut tx,
        policy,
        &session_id,
        1,
        None,
        expires_at,
        origin,
        now,
    )
    .await?;
    sqlx::query("UPDATE auth_codes SET session_id = $1 WHERE code_hash = $2")
        .bind(&session_id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        NewEvent {
            kind: "session_created",
            severity: Severity::Info,
            user_id: Some(&user_id),
            session_id: Some(&session_id),
            origin,
            details: json!({ "client_id": client_id, "device": device, "dpop_jkt": bound }),
            audit: Audit::As(Actor::User(&user_id)),
        },
        now,
    )
    .await?;
    if new_device {
        events::record(
            &mut tx,
            NewEvent {
                kind: "new_device",
                severity: Severity::Low,
                user_id: Some(&user_id),
                session_id: Some(&session_id),
                origin,
                details: json!({ "generation": 1, "device": device, "client_id": client_id }),
                audit: Audit::As(Actor::System),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(Grant {
        session_id,
        user_id,
        client_id: client_id.to_string(),
        scope,
        auth_time,
        nonce: row.try_get("nonce")?,
        refresh_token,
        refresh_expires_at,
        dpop_jkt: bound.map(str::to_string),
        used: None,
    }))
}

/// A device (name and platform as the app reported them) this account has not signed in
/// from before; the very first sign-in of an account is not news.
async fn is_new_device(tx: &mut Tx, user_id: &str, device: &DeviceInfo) -> Result<bool> {
    let any = sqlx::query("SELECT 1 FROM sessions WHERE user_id = $1 LIMIT 1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    if any.is_none() {
        return Ok(false);
    }
    let seen = sqlx::query(
        "SELECT 1 FROM sessions WHERE user_id = $1 AND device_name IS NOT DISTINCT FROM $2 \
         AND device_platform IS NOT DISTINCT FROM $3 LIMIT 1",
    )
    .bind(user_id)
    .bind(device.name.as_deref())
    .bind(device.platform.as_deref())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(seen.is_none())
}

/// Revokes the least recently used sessions so that one more fits under the limit.
async fn enforce_session_limit(
    tx: &mut Tx,
    policy: &TokenPolicy,
    user_id: &str,
    origin: &Origin,
    now: Millis,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         AND last_used_at > $3 ORDER BY last_used_at ASC, id ASC",
    )
    .bind(user_id)
    .bind(now)
    .bind(now - secs(policy.family_idle_secs))
    .fetch_all(&mut **tx)
    .await?;
    let max = policy.max_sessions_per_user as usize;
    if rows.len() < max {
        return Ok(());
    }
    for row in &rows[..rows.len() + 1 - max] {
        let sid: String = row.try_get("id")?;
        let evicted = NewEvent {
            kind: "session_evicted",
            severity: Severity::Low,
            user_id: Some(user_id),
            session_id: Some(&sid),
            origin,
            details: json!({ "reason": "session_limit", "max_sessions_per_user": max }),
            audit: Audit::As(Actor::System),
        };
        revoke_and_record(
            tx,
            &sid,
            Actor::System,
            "session_limit",
            origin,
            now,
            Audit::Covered,
            Some(evicted),
        )
        .await?;
    }
    Ok(())
}

/// The token a new one succeeds: the family's chain is a list linked by row id, walked from
/// the session's head (no (session, generation) index, whose random page cost every rotation
/// a write; docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parent {
    pub generation: i64,
    pub id: i64,
}

/// A family's next refresh token, the one statement both rotation paths issue (the batch
/// rotator in `batch.rs` runs it through rusqlite with `?n` parameters).
pub(crate) const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (secret_hash, session_id, generation, parent_generation, parent_id, \
     issued_at, expires_at, issued_ip, issued_user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

#[allow(clippy::too_many_arguments)]
async fn insert_refresh_token(
    tx: &mut Tx,
    policy: &TokenPolicy,
    session_id: &str,
    generation: i64,
    parent: Option<Parent>,
    session_expires_at: Millis,
    origin: &Origin,
    now: Millis,
) -> Result<(Secret<String>, Millis)> {
    let (secret, secret_hash) = new_refresh_secret();
    let expires_at = refresh_expiry(policy, now, session_expires_at);
    let id: i64 = sqlx::query(&format!("{INSERT_REFRESH_TOKEN} RETURNING id"))
        .bind(secret_hash)
        .bind(session_id)
        .bind(generation)
        .bind(parent.map(|p| p.generation))
        .bind(parent.map(|p| p.id))
        .bind(now)
        .bind(expires_at)
        .bind(origin.ip.as_deref())
        .bind(origin.user_agent.as_deref())
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
    sqlx::query("UPDATE sessions SET head_token_id = $1 WHERE id = $2")
        .bind(id)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    let token = refresh_token(id, &secret);
    Ok((token, expires_at))
}

/// The scope of a refresh: the granted one, or a narrower one asked for; `None` if the request
/// asks for anything not granted.
pub(crate) fn refreshed_scope(requested: Option<&str>, granted: String) -> Option<String> {
    let Some(requested) = requested else {
        return Some(granted);
    };
    let within = requested
        .split_ascii_whitespace()
        .all(|s| granted.split_ascii_whitespace().any(|g| g == s));
    within.then(|| {
        requested
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// When a new refresh token expires: its idle lifetime, capped by the family's absolute
/// lifetime, which rotation never extends.
pub(crate) fn refresh_expiry(
    policy: &TokenPolicy,
    now: Millis,
    session_expires_at: Millis,
) -> Millis {
    (now + secs(policy.family_idle_secs)).min(session_expires_at)
}

/// The refresh grant: retire the presented token and issue its successor, or detect reuse.
pub async fn rotate(
    db: &Db,
    policy: &TokenPolicy,
    token: &str,
    r: &RefreshRequest<'_>,
) -> Result<Outcome> {
    let Some(presented) = parse_refresh_token(token) else {
        return Ok(Err(Refusal::Unknown));
    };
    let outcome = rotate_or_refuse(db, policy, &presented, r).await?;
    if let Err(Refusal::KeyMismatch) = outcome {
        // The rotation was rolled back; now record the attempt, in a transaction of its own.
        key_mismatch(db, &presented, r).await?;
    }
    Ok(outcome)
}

async fn rotate_or_refuse(
    db: &Db,
    policy: &TokenPolicy,
    presented: &RefreshTokenRef,
    r: &RefreshRequest<'_>,
) -> Result<Outcome> {
    let mut tx = db.begin_write().await?;
    let live = sqlx::query(
        "SELECT t.session_id, t.generation, t.issued_at, t.issued_ip, t.issued_user_agent \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         WHERE t.id = $1 AND t.secret_hash = $2 AND t.expires_at > $3 AND s.head_token_id = t.id",
    )
    .bind(presented.id)
    .bind(&presented.secret_hash)
    .bind(r.now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(live) = live else {
        return refuse_or_grace(tx, policy, presented, r).await;
    };
    let session_id: String = live.try_get("session_id")?;
    let parent = Parent {
        generation: live.try_get("generation")?,
        id: presented.id,
    };
    let prior = PriorUse {
        at: live.try_get("issued_at")?,
        ip: live.try_get("issued_ip")?,
        user_agent: live.try_get("issued_user_agent")?,
    };
    match advance(
        &mut tx,
        policy,
        &session_id,
        presented.id,
        parent,
        Some(prior),
        r,
    )
    .await?
    {
        Advanced::Granted(grant) => {
            tx.commit().await?;
            Ok(Ok(grant))
        }
        // Dropping `tx` rolls the session update back.
        Advanced::Refused(refusal) => Ok(Err(refusal)),
        // Another replica rotated it first, or the family was revoked, since the read above
        // (PostgreSQL; on SQLite the transaction holds the write lock throughout).
        Advanced::NotLive => refuse_or_grace(tx, policy, presented, r).await,
    }
}

/// A bound family's token came with another key or none: refuse (done), record, and by policy
/// revoke the family — holding someone's bound token without their key is proof of theft.
async fn key_mismatch(db: &Db, presented: &RefreshTokenRef, r: &RefreshRequest<'_>) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT t.session_id, t.generation, s.user_id, s.dpop_jkt FROM refresh_tokens t \
         JOIN sessions s ON s.id = t.session_id WHERE t.id = $1 AND t.secret_hash = $2",
    )
    .bind(presented.id)
    .bind(&presented.secret_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let session_id: String = row.try_get("session_id")?;
    let user_id: String = row.try_get("user_id")?;
    let mismatch = NewEvent {
        kind: "key_mismatch",
        severity: Severity::High,
        user_id: Some(&user_id),
        session_id: Some(&session_id),
        origin: r.origin,
        details: json!({
            "presented_generation": row.try_get::<i64, _>("generation")?,
            "bound_jkt": row.try_get::<Option<String>, _>("dpop_jkt")?,
            "presented_jkt": r.key.jkt,
            "presented_by_client": r.client_id,
            "session_revoked": false,
        }),
        audit: Audit::As(Actor::System),
    };
    if r.key.revoke_on_mismatch {
        revoke_and_record(
            &mut tx,
            &session_id,
            Actor::System,
            "key_mismatch",
            r.origin,
            r.now,
            Audit::Covered,
            Some(mismatch),
        )
        .await?;
    } else {
        events::record(&mut tx, mismatch, r.now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A session's count of refreshes in its one-minute window (for `refresh_storm`) once the
/// refresh at `$1` is counted, from the row as it was before.
macro_rules! rate_window_next_count {
    () => {
        "CASE WHEN rate_window_start > $1 - 60000 THEN rate_window_count + 1 ELSE 1 END"
    };
}
pub(crate) const RATE_WINDOW_NEXT_COUNT: &str = rate_window_next_count!();

/// The session UPDATE of a rotation counts the refresh in the window: every right-hand side
/// reads the row as it was before the update.
pub(crate) const RATE_WINDOW_SET: &str = concat!(
    "rate_window_count = ",
    rate_window_next_count!(),
    ", rate_window_start = CASE WHEN rate_window_start > $1 - 60000 THEN rate_window_start ELSE $1 END"
);

/// What [`advance`] did.
#[allow(clippy::large_enum_variant)] // handed straight back once per refresh, never stored
enum Advanced {
    Granted(Grant),
    /// The session moved (uncommitted); the caller drops the transaction.
    Refused(Refusal),
    /// The session's head is no longer `expected_head`, or the session is revoked or expired.
    NotLive,
}

/// Moves the session's head from `expected_head` to a new token of the family, inside `tx`.
async fn advance(
    tx: &mut Tx,
    policy: &TokenPolicy,
    session_id: &str,
    expected_head: i64,
    parent: Parent,
    prior: Option<PriorUse>,
    r: &RefreshRequest<'_>,
) -> Result<Advanced> {
    // An unbound family of a public client that now proves a key is bound to it from here on.
    let session = sqlx::query(&format!(
        "UPDATE sessions SET last_used_at = $1, last_ip = $2, last_user_agent = $3, generation = generation + 1, \
         {RATE_WINDOW_SET}, dpop_jkt = COALESCE(dpop_jkt, $5) \
         WHERE id = $4 AND head_token_id = $6 AND revoked_at IS NULL AND expires_at > $1 \
         RETURNING user_id, client_id, scope, auth_time, expires_at, generation, rate_window_count, dpop_jkt"
    ))
    .bind(r.now)
    .bind(r.origin.ip.as_deref())
    .bind(r.origin.user_agent.as_deref())
    .bind(session_id)
    .bind(r.key.jkt.filter(|_| r.key.bind))
    .bind(expected_head)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(session) = session else {
        return Ok(Advanced::NotLive);
    };
    if session.try_get::<String, _>("client_id")? != r.client_id {
        return Ok(Advanced::Refused(Refusal::WrongClient));
    }
    let bound: Option<String> = session.try_get("dpop_jkt")?;
    if bound.as_deref().is_some_and(|b| Some(b) != r.key.jkt) {
        return Ok(Advanced::Refused(Refusal::KeyMismatch));
    }
    let granted: String = session.try_get("scope")?;
    let Some(scope) = refreshed_scope(r.requested_scope, granted) else {
        return Ok(Advanced::Refused(Refusal::ScopeNotGranted));
    };
    let generation: i64 = session.try_get("generation")?;
    let session_expires: i64 = session.try_get("expires_at")?;
    let (refresh_token, refresh_expires_at) = insert_refresh_token(
        tx,
        policy,
        session_id,
        generation,
        Some(parent),
        session_expires,
        r.origin,
        r.now,
    )
    .await?;
    Ok(Advanced::Granted(Grant {
        session_id: session_id.to_string(),
        user_id: session.try_get("user_id")?,
        client_id: r.client_id.to_string(),
        scope,
        auth_time: session.try_get("auth_time")?,
        nonce: None,
        refresh_token,
        refresh_expires_at,
        dpop_jkt: bound,
        used: match prior {
            Some(prior) => Some(Use {
                prior,
                in_window: session.try_get("rate_window_count")?,
                generation,
            }),
            None => None,
        },
    }))
}

/// The presented token is not live: tell why, and revoke the family if it was retired.
async fn refuse_or_grace(
    mut tx: Tx,
    policy: &TokenPolicy,
    presented: &RefreshTokenRef,
    r: &RefreshRequest<'_>,
) -> Result<Outcome> {
    // The session's row is locked first, and the head read under that lock. Every path takes
    // rows in the same order (session, then token, then the audit head): a refresh that lost
    // the race in `advance` arrives here holding the session's row already (PostgreSQL keeps a
    // row lock taken by an UPDATE whose recheck failed), and two replays of one token must not
    // each read a head the other is about to move.
    let locked = sqlx::query(
        "UPDATE sessions SET head_token_id = head_token_id \
         WHERE id = (SELECT t.session_id FROM refresh_tokens t WHERE t.id = $1 AND t.secret_hash = $2)",
    )
    .bind(presented.id)
    .bind(&presented.secret_hash)
    .execute(&mut *tx)
    .await?;
    if locked.rows_affected() == 0 {
        return Ok(Err(Refusal::Unknown));
    }
    let row = sqlx::query(
        "SELECT t.session_id, t.generation, t.first_used_at, t.issued_at, t.issued_ip, t.issued_user_agent, \
         s.user_id, s.generation AS current_generation, \
         s.revoked_at, s.revoke_reason, s.expires_at AS session_expires_at, s.head_token_id, \
         h.parent_id AS head_parent_id, h.issued_at AS head_issued_at \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens h ON h.id = s.head_token_id WHERE t.id = $1",
    )
    .bind(presented.id)
    .fetch_one(&mut *tx)
    .await?;
    let session_id: String = row.try_get("session_id")?;
    let user_id: String = row.try_get("user_id")?;
    let generation: i64 = row.try_get("generation")?;
    let current_generation: i64 = row.try_get("current_generation")?;
    let head: Option<i64> = row.try_get("head_token_id")?;
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
        // Someone still holds a token of a dead family: worth recording, nothing to revoke.
        events::record(
            &mut tx,
            NewEvent {
                kind: "revoked_token_used",
                severity: Severity::Medium,
                user_id: Some(&user_id),
                session_id: Some(&session_id),
                origin: r.origin,
                details: json!({
                    "presented_generation": generation,
                    "revoke_reason": row.try_get::<Option<String>, _>("revoke_reason")?,
                }),
                audit: Audit::As(Actor::System),
            },
            r.now,
        )
        .await?;
        tx.commit().await?;
        return Ok(Err(Refusal::Revoked));
    }
    if head == Some(presented.id) {
        // The family's live token, past its own or its family's lifetime.
        return Ok(Err(Refusal::Expired));
    }

    // A retired token. Within the grace window, the immediately previous token may be replayed
    // by a client that lost the response: the head it never received (its successor) is
    // replaced by a new one, so the family still has exactly one live token. The window runs
    // from the token's first use: its first successor's issue, kept on the token from its first
    // replay on, since the replacement successor shows the replay instead.
    let head_parent: Option<i64> = row.try_get("head_parent_id")?;
    let head_issued: Option<i64> = row.try_get("head_issued_at")?;
    if let (Some(head), Some(head_issued)) = (head, head_issued) {
        let first_used_at = row
            .try_get::<Option<i64>, _>("first_used_at")?
            .unwrap_or(head_issued);
        let in_window = head_parent == Some(presented.id)
            && policy.reuse_grace_secs > 0
            && r.now - first_used_at <= secs(policy.reuse_grace_secs);
        if in_window {
            if row.try_get::<i64, _>("session_expires_at")? <= r.now {
                // A lost response at the very end of the family's life: nothing to forgive.
                return Ok(Err(Refusal::Expired));
            }
            let counted = sqlx::query(
                "UPDATE refresh_tokens SET grace_replays = grace_replays + 1, \
                 first_used_at = COALESCE(first_used_at, $3) WHERE id = $1 AND grace_replays < $2",
            )
            .bind(presented.id)
            .bind(i64::from(policy.reuse_grace_max_replays))
            .bind(first_used_at)
            .execute(&mut *tx)
            .await?;
            if counted.rows_affected() == 1 {
                let parent = Parent {
                    generation,
                    id: presented.id,
                };
                // A replay is a use like any other to the suspicion signals: compared with the
                // presented token's own issue, as a rotation of it would be.
                let prior = PriorUse {
                    at: row.try_get("issued_at")?,
                    ip: row.try_get("issued_ip")?,
                    user_agent: row.try_get("issued_user_agent")?,
                };
                match advance(&mut tx, policy, &session_id, head, parent, Some(prior), r).await? {
                    Advanced::Granted(grant) => {
                        events::record(
                            &mut tx,
                            NewEvent {
                                kind: "grace_replay",
                                severity: Severity::Info,
                                user_id: Some(&user_id),
                                session_id: Some(&session_id),
                                origin: r.origin,
                                details: json!({ "replayed_generation": generation, "first_used_at": first_used_at }),
                                audit: Audit::As(Actor::System),
                            },
                            r.now,
                        )
                        .await?;
                        tx.commit().await?;
                        return Ok(Ok(grant));
                    }
                    Advanced::Refused(refusal) => return Ok(Err(refusal)),
                    // Not under the session's lock with the head, revocation and expiry checked
                    // above; if it were, the replay is refused like any other.
                    Advanced::NotLive => {}
                }
            }
        }
    }

    // RFC 9700 §4.14.2: a replayed refresh token revokes the whole family. The evidence is when
    // and from where it was used first: its successor's issue. Generations fall by at least one
    // per step back from the head, so this many steps reach it.
    let steps = (current_generation - generation + 1).max(1);
    let used = sqlx::query(&chain_walk("WHERE t.id = $3"))
        .bind(&session_id)
        .bind(steps)
        .bind(presented.id)
        .fetch_optional(&mut *tx)
        .await?;
    let used = chain_links(used.as_slice())?.pop();
    let used = used.as_ref();
    let detected = NewEvent {
        kind: "reuse_detected",
        severity: Severity::High,
        user_id: Some(&user_id),
        session_id: Some(&session_id),
        origin: r.origin,
        details: json!({
            "replayed_generation": generation,
            "current_generation": current_generation,
            "retired_at": used.and_then(|u| u.used_at),
            "retired_by_ip": used.and_then(|u| u.used_ip.as_deref()),
            "retired_by_user_agent": used.and_then(|u| u.used_user_agent.as_deref()),
            "presented_by_client": r.client_id,
        }),
        audit: Audit::As(Actor::System),
    };
    revoke_and_record(
        &mut tx,
        &session_id,
        Actor::System,
        "reuse_detected",
        r.origin,
        r.now,
        Audit::Covered,
        Some(detected),
    )
    .await?;
    tx.commit().await?;
    Ok(Err(Refusal::ReuseDetected))
}

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
    let revoked = revoke_session_in(tx, session_id, &actor.revoked_by(), reason, now).await?;
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
                kind: "session_revoked",
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

/// Is the session live? Access tokens are worth nothing once their session is revoked.
pub async fn session_active(db: &Db, session_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT revoked_at FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(db.read())
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<i64>, _>("revoked_at")?.is_none(),
        None => false,
    })
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

/// One generation of a family, for the rotation chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    pub generation: i64,
    pub parent_generation: Option<i64>,
    pub state: String,
    pub retired_reason: Option<String>,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub issued_ip: Option<String>,
    pub issued_user_agent: Option<String>,
    pub used_at: Option<Millis>,
    pub used_ip: Option<String>,
    pub used_user_agent: Option<String>,
    pub grace_replays: i64,
}

/// A link's state and use are not stored: a token is `active` while it is the head of a live
/// session, `revoked` as the head of a revoked one, and otherwise `rotated`, used when and where
/// its successor (the link walked just before it) was issued. A token replayed within the grace
/// window has two successors; its use is the first one's time (`first_used_at`), and the
/// address and user agent of the replay.
const CHAIN_COLUMNS: &str = "t.generation, t.parent_generation, \
     CASE WHEN w.child_id IS NOT NULL THEN 'rotated' WHEN s.revoked_at IS NOT NULL THEN 'revoked' ELSE 'active' END AS state, \
     CASE WHEN w.child_id IS NOT NULL THEN 'rotated' ELSE s.revoke_reason END AS retired_reason, \
     t.issued_at, t.expires_at, t.issued_ip, t.issued_user_agent, COALESCE(t.first_used_at, c.issued_at) AS used_at, \
     c.issued_ip AS used_ip, \
     c.issued_user_agent AS used_user_agent, t.grace_replays";

/// The family's tokens walked from its newest (the session's head) back along `parent_id`, at
/// most `$2` of them, each with the one walked before it (its successor).
fn chain_walk(filter: &str) -> String {
    format!(
        "WITH RECURSIVE walk (id, parent_id, child_id, step) AS ( \
           SELECT t.id, t.parent_id, CAST(NULL AS BIGINT), 1 FROM refresh_tokens t \
           JOIN sessions s ON t.id = s.head_token_id WHERE s.id = $1 \
           UNION ALL \
           SELECT t.id, t.parent_id, w.id, w.step + 1 FROM refresh_tokens t JOIN walk w ON t.id = w.parent_id WHERE w.step < $2 \
         ) SELECT {CHAIN_COLUMNS} FROM walk w JOIN refresh_tokens t ON t.id = w.id JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens c ON c.id = w.child_id {filter}"
    )
}

/// The whole chain, oldest first.
pub async fn chain(db: &Db, session_id: &str) -> Result<Vec<ChainLink>> {
    let rows = sqlx::query(&chain_walk("ORDER BY t.generation"))
        .bind(session_id)
        .bind(i64::MAX)
        .fetch_all(db.read())
        .await?;
    chain_links(&rows)
}

/// Up to `limit` generations before `before` (or the newest), newest first. `head` is the
/// session's generation: the walk from it stops as soon as the page is full.
pub async fn chain_page(
    db: &Db,
    session_id: &str,
    head: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ChainLink>> {
    // Generations fall by at least one per step, so this many steps reach below `before` and
    // then fill the page.
    // `before` comes from the caller: no arithmetic on it may overflow.
    let steps = before
        .map_or(0, |b| head.saturating_sub(b).saturating_add(1).max(0))
        .saturating_add(limit);
    let rows = sqlx::query(&chain_walk(
        "WHERE ($3 IS NULL OR t.generation < $3) ORDER BY t.generation DESC LIMIT $4",
    ))
    .bind(session_id)
    .bind(steps)
    .bind(before)
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    chain_links(&rows)
}

fn chain_links(rows: &[AnyRow]) -> Result<Vec<ChainLink>> {
    rows.iter()
        .map(|r| {
            Ok(ChainLink {
                generation: r.try_get("generation")?,
                parent_generation: r.try_get("parent_generation")?,
                state: r.try_get("state")?,
                retired_reason: r.try_get("retired_reason")?,
                issued_at: r.try_get("issued_at")?,
                expires_at: r.try_get("expires_at")?,
                issued_ip: r.try_get("issued_ip")?,
                issued_user_agent: r.try_get("issued_user_agent")?,
                used_at: r.try_get("used_at")?,
                used_ip: r.try_get("used_ip")?,
                used_user_agent: r.try_get("used_user_agent")?,
                grace_replays: r.try_get("grace_replays")?,
            })
        })
        .collect()
}

/// Deletes what has no use any more: expired forms and codes, old throttle entries.
pub async fn prune(db: &Db, now: Millis, failure_window: Millis) -> Result<()> {
    let day = secs(24 * 3600);
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM auth_requests WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    // Used codes are kept a day so that a late second redemption is still recognised as reuse.
    sqlx::query("DELETE FROM auth_codes WHERE expires_at < $1")
        .bind(now - day)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM signin_failures WHERE at < $1")
        .bind(now - failure_window)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM dpop_proofs WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
