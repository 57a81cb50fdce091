//! Device authorization (RFC 8628): a device's request to sign in, the code a person enters at
//! `/device`, the approval there, and the device's polls at the token endpoint. Both codes are
//! kept as hashes only.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::auth_requests::{device_from_row, DeviceInfo};
use super::{Origin, Result};
use crate::clock::{secs, Millis};
use crate::db::{Db, Tx};
use crate::secret::{
    display_user_code, new_id, new_token, new_user_code, token_hash, Secret, TokenKind,
};

/// What a device asked for at the device authorization endpoint.
pub struct NewRequest<'a> {
    pub client_id: &'a str,
    pub scope: &'a str,
    pub dpop_jkt: Option<&'a str>,
    pub device: &'a DeviceInfo,
    /// The device's own address and software.
    pub origin: &'a Origin,
    pub ttl_secs: u64,
    pub interval_secs: u64,
}

/// The two codes of a new request (RFC 8628 §3.2).
pub struct Issued {
    pub device_code: Secret<String>,
    /// As shown: `WDJB-MJHT`.
    pub user_code: String,
}

/// Stores a new request. A user code still held by an expired request is taken over; a clash
/// with a live one (one in 2^34) takes another code.
pub async fn create(db: &Db, new: &NewRequest<'_>, now: Millis) -> Result<Issued> {
    let device_code = new_token(TokenKind::DeviceCode);
    let mut tx = db.begin_write().await?;
    let user_code = loop {
        let code = new_user_code();
        let hash = token_hash(&code);
        sqlx::query(
            "DELETE FROM device_authorizations WHERE user_code_hash = $1 AND expires_at <= $2",
        )
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let taken = sqlx::query("SELECT 1 FROM device_authorizations WHERE user_code_hash = $1")
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_none() {
            break code;
        }
    };
    sqlx::query(
        "INSERT INTO device_authorizations (id, device_code_hash, user_code_hash, client_id, scope, dpop_jkt, \
         device_name, device_platform, app_version, ip, user_agent, created_at, expires_at, interval_secs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new_id())
    .bind(token_hash(device_code.expose()))
    .bind(token_hash(&user_code))
    .bind(new.client_id)
    .bind(new.scope)
    .bind(new.dpop_jkt)
    .bind(new.device.name.as_deref())
    .bind(new.device.platform.as_deref())
    .bind(new.device.app_version.as_deref())
    .bind(new.origin.ip.as_deref())
    .bind(new.origin.user_agent.as_deref())
    .bind(now)
    .bind(now + secs(new.ttl_secs))
    .bind(i64::try_from(new.interval_secs).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Issued {
        device_code,
        user_code: display_user_code(&user_code),
    })
}

/// A request waiting for a person's decision, as the approval page shows it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    pub device: DeviceInfo,
    /// Where the device asked from.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub browser_hash: Option<Vec<u8>>,
    pub csrf_hash: Option<Vec<u8>>,
}

const PENDING_COLUMNS: &str =
    "id, client_id, scope, device_name, device_platform, app_version, ip, \
     user_agent, created_at, expires_at, browser_hash, csrf_hash";

fn pending_from_row(row: &AnyRow) -> Result<Pending> {
    Ok(Pending {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        device: device_from_row(row)?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        browser_hash: row.try_get("browser_hash")?,
        csrf_hash: row.try_get("csrf_hash")?,
    })
}

/// The pending request a user code (normalized) belongs to, if it is still open. Read on the
/// writer's pool, as every look-up here: a replica may not have a request made a moment ago.
pub async fn pending_by_user_code(
    db: &Db,
    normalized: &str,
    now: Millis,
) -> Result<Option<Pending>> {
    let row = sqlx::query(&format!(
        "SELECT {PENDING_COLUMNS} FROM device_authorizations \
         WHERE user_code_hash = $1 AND state = 'pending' AND expires_at > $2"
    ))
    .bind(token_hash(normalized))
    .bind(now)
    .fetch_optional(db.write())
    .await?;
    row.as_ref().map(pending_from_row).transpose()
}

/// The pending request with this id, if it is still open.
pub async fn pending(db: &Db, id: &str, now: Millis) -> Result<Option<Pending>> {
    let row = sqlx::query(&format!(
        "SELECT {PENDING_COLUMNS} FROM device_authorizations \
         WHERE id = $1 AND state = 'pending' AND expires_at > $2"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(db.write())
    .await?;
    row.as_ref().map(pending_from_row).transpose()
}

/// Ties the approval form now shown to the browser that asked for it (the form's CSRF token
/// and that browser's cookie); a form shown earlier elsewhere stops being accepted.
pub async fn open_form(db: &Db, id: &str, browser_hash: &[u8], csrf_hash: &[u8]) -> Result<()> {
    sqlx::query(
        "UPDATE device_authorizations SET browser_hash = $1, csrf_hash = $2 WHERE id = $3 AND state = 'pending'",
    )
    .bind(browser_hash)
    .bind(csrf_hash)
    .bind(id)
    .execute(db.write())
    .await?;
    Ok(())
}

/// Records the person's approval in the caller's transaction; false if the request was decided
/// or expired meanwhile.
pub async fn approve(
    tx: &mut Tx,
    id: &str,
    user_id: &str,
    granted_scope: &str,
    approver: &Origin,
    now: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE device_authorizations SET state = 'approved', user_id = $1, granted_scope = $2, auth_time = $3, \
         approver_ip = $4, approver_user_agent = $5, browser_hash = NULL, csrf_hash = NULL \
         WHERE id = $6 AND state = 'pending' AND expires_at > $3",
    )
    .bind(user_id)
    .bind(granted_scope)
    .bind(now)
    .bind(approver.ip.as_deref())
    .bind(approver.user_agent.as_deref())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The person said no: the device is told `access_denied` at its next poll. False if the
/// request was decided or expired meanwhile.
pub async fn deny(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE device_authorizations SET state = 'denied', browser_hash = NULL, csrf_hash = NULL \
         WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .execute(db.write())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts a wrong password on the request's approval form; at `max` the request is denied.
/// True if it was.
pub async fn failed_signin(db: &Db, id: &str, max: u32) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE device_authorizations SET failed_signins = failed_signins + 1 \
         WHERE id = $1 AND state = 'pending' RETURNING failed_signins",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    // Decided or expired meanwhile: nothing to count.
    let Some(row) = row else {
        return Ok(false);
    };
    let failures: i64 = row.try_get("failed_signins")?;
    let denied = failures >= i64::from(max);
    if denied {
        sqlx::query(
            "UPDATE device_authorizations SET state = 'denied', browser_hash = NULL, csrf_hash = NULL \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(denied)
}

/// An approved request, taken by the device's poll: everything its session needs.
#[derive(Debug)]
pub struct Approved {
    pub user_id: String,
    pub scope: String,
    pub auth_time: Millis,
    pub device: DeviceInfo,
    pub dpop_jkt: Option<String>,
    pub approver_ip: Option<String>,
}

/// What a device's poll comes to (RFC 8628 §3.5).
#[derive(Debug)]
pub enum Poll {
    /// No request has this device code.
    Unknown,
    /// The device code was issued to another client.
    WrongClient,
    Expired,
    /// Nobody has decided yet: `authorization_pending`.
    Pending,
    /// Polled sooner than the interval allows: `slow_down`, and the interval grows by 5 s.
    SlowDown,
    /// `access_denied`; the request is gone.
    Denied,
    /// Approved: the request is spent (a second poll finds nothing).
    Approved(Approved),
}

/// A device's poll, in the caller's transaction: decides it and records it (the poll time, a
/// longer interval, the request spent once approved or denied).
pub async fn poll(tx: &mut Tx, device_code: &str, client_id: &str, now: Millis) -> Result<Poll> {
    let row = sqlx::query(
        "SELECT id, client_id, state, expires_at, interval_secs, polled_at, user_id, granted_scope, auth_time, \
         device_name, device_platform, app_version, dpop_jkt, approver_ip \
         FROM device_authorizations WHERE device_code_hash = $1",
    )
    .bind(token_hash(device_code))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Poll::Unknown);
    };
    let id: String = row.try_get("id")?;
    if row.try_get::<String, _>("client_id")? != client_id {
        return Ok(Poll::WrongClient);
    }
    if row.try_get::<i64, _>("expires_at")? <= now {
        return Ok(Poll::Expired);
    }
    let state: String = row.try_get("state")?;
    if state == "pending" {
        let interval: i64 = row.try_get("interval_secs")?;
        let polled_at: Option<i64> = row.try_get("polled_at")?;
        let too_soon = polled_at.is_some_and(|at| now < at + interval * 1000);
        sqlx::query(
            "UPDATE device_authorizations SET polled_at = $1, interval_secs = interval_secs + $2 WHERE id = $3",
        )
        .bind(now)
        .bind(if too_soon { 5_i64 } else { 0 })
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        return Ok(if too_soon {
            Poll::SlowDown
        } else {
            Poll::Pending
        });
    }
    // Decided: the request is spent either way. Of two polls racing, one deletes it.
    let spent = sqlx::query("DELETE FROM device_authorizations WHERE id = $1 AND state = $2")
        .bind(&id)
        .bind(&state)
        .execute(&mut **tx)
        .await?;
    if spent.rows_affected() != 1 {
        return Ok(Poll::Unknown);
    }
    if state != "approved" {
        return Ok(Poll::Denied);
    }
    Ok(Poll::Approved(Approved {
        user_id: row.try_get("user_id")?,
        scope: row.try_get("granted_scope")?,
        auth_time: row.try_get("auth_time")?,
        device: device_from_row(&row)?,
        dpop_jkt: row.try_get("dpop_jkt")?,
        approver_ip: row.try_get("approver_ip")?,
    }))
}
