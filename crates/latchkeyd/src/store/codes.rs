//! Authorization codes: issued when a sign-in completes, redeemed once for a new session and
//! the first token of its family (RFC 6749 §4.1 with PKCE).

use serde_json::json;
use sqlx::Row;

use super::audit::Actor;
use super::auth_requests::{device_from_row, AuthRequest, DeviceInfo};
use super::events::{self, Audit, EventKind, NewEvent, Severity};
use super::outcome::{Grant, Outcome, Refusal};
use super::revocation::{lock_sessions, revoke_and_record};
use super::rotation::{self, refresh_expiry};
use super::{Origin, Result};
use crate::clock::{secs, Millis};
use crate::config::TokenPolicy;
use crate::db::{Db, Tx};
use crate::secret::{
    new_id, new_refresh_secret, new_token, pkce_s256_matches, refresh_token, token_hash, Secret,
    TokenKind,
};

/// Turns a completed sign-in into a single-use authorization code (stored as a hash), in the
/// caller's transaction; `None` if the form was already used (the code is written all the
/// same: the transaction must not commit).
pub async fn issue_code(
    tx: &mut Tx,
    req: &AuthRequest,
    scope: &str,
    user_id: &str,
    origin: &Origin,
    policy: &TokenPolicy,
    now: Millis,
) -> Result<Option<Secret<String>>> {
    let code = new_token(TokenKind::AuthorizationCode);
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
    .execute(&mut **tx)
    .await?;
    // A form yields one code: of two concurrent submissions, the second finds it gone.
    let consumed = sqlx::query("DELETE FROM auth_requests WHERE id = $1")
        .bind(&req.id)
        .execute(&mut **tx)
        .await?;
    if consumed.rows_affected() != 1 {
        return Ok(None);
    }
    Ok(Some(code))
}

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
            kind: EventKind::CodeReuseDetected,
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

    let session = NewSession {
        user_id: row.try_get("user_id")?,
        client_id,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        nonce: row.try_get("nonce")?,
        device: device_from_row(&row)?,
        bound: dpop_jkt.filter(|_| bind_refresh),
    };
    let grant = match open_session(&mut tx, session, policy, origin, now).await? {
        Ok(grant) => grant,
        Err(refusal) => {
            tx.commit().await?;
            return Ok(Err(refusal));
        }
    };
    sqlx::query("UPDATE auth_codes SET session_id = $1 WHERE code_hash = $2")
        .bind(&grant.session_id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(grant))
}

/// A completed sign-in, about to become a session.
pub struct NewSession<'a> {
    pub user_id: String,
    pub client_id: &'a str,
    pub scope: String,
    pub auth_time: Millis,
    pub nonce: Option<String>,
    pub device: DeviceInfo,
    /// The key thumbprint its refresh tokens are bound to (DPoP), if any.
    pub bound: Option<&'a str>,
}

/// Opens a session and its refresh-token family in the caller's transaction, with its events
/// (`session_created`, `new_device`) and the account's session cap; refused if the account
/// was disabled meanwhile. Both sign-in grants (a code, a device code) end here.
pub async fn open_session(
    tx: &mut Tx,
    new: NewSession<'_>,
    policy: &TokenPolicy,
    origin: &Origin,
    now: Millis,
) -> Result<Outcome> {
    let NewSession {
        user_id,
        client_id,
        scope,
        auth_time,
        nonce,
        device,
        bound,
    } = new;
    let session_id = new_id();

    // The account's row, taken as `users::set_disabled` takes it: a sign-in completed by a
    // disabled account gets no session, and one racing the disabling is either revoked by it
    // or refused here.
    let enabled = sqlx::query(
        "UPDATE users SET disabled_at = disabled_at WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(&user_id)
    .execute(&mut **tx)
    .await?;
    if enabled.rows_affected() != 1 {
        return Ok(Err(Refusal::AccountDisabled));
    }

    enforce_session_limit(tx, policy, &user_id, origin, now).await?;
    let new_device = is_new_device(tx, &user_id, &device).await?;

    // Without offline_access no refresh token is handed out: the sign-in lasts as long as its
    // access token, and the device list says so.
    let lifetime = if crate::scope::contains(&scope, crate::scope::OFFLINE_ACCESS) {
        policy.family_lifetime_secs
    } else {
        policy.access_token_ttl_secs
    };
    let expires_at = now + secs(lifetime);
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
    .execute(&mut **tx)
    .await?;
    let (refresh_token, refresh_expires_at) =
        insert_first_token(tx, policy, &session_id, expires_at, origin, now).await?;
    events::record(
        tx,
        NewEvent {
            kind: EventKind::SessionCreated,
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
            tx,
            NewEvent {
                kind: EventKind::NewDevice,
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
    Ok(Ok(Grant {
        session_id,
        user_id,
        client_id: client_id.to_string(),
        scope,
        auth_time,
        nonce,
        refresh_token,
        refresh_expires_at,
        dpop_jkt: bound.map(str::to_string),
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
    let evict = rows[..rows.len() + 1 - max]
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    lock_sessions(tx, &evict).await?;
    for sid in evict {
        let evicted = NewEvent {
            kind: EventKind::SessionEvicted,
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

/// A new family's first refresh token, made its session's head.
async fn insert_first_token(
    tx: &mut Tx,
    policy: &TokenPolicy,
    session_id: &str,
    session_expires_at: Millis,
    origin: &Origin,
    now: Millis,
) -> Result<(Secret<String>, Millis)> {
    let (secret, secret_hash) = new_refresh_secret();
    let expires_at = refresh_expiry(policy, now, session_expires_at);
    let id =
        rotation::insert_first_token(tx, session_id, &secret_hash, expires_at, origin, now).await?;
    sqlx::query("UPDATE sessions SET head_token_id = $1 WHERE id = $2")
        .bind(id)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    let token = refresh_token(id, &secret);
    Ok((token, expires_at))
}
