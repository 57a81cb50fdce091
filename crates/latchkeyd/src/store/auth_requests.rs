//! Authorization requests: a sign-in form in progress, between `/authorize` and its code.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::Result;
use crate::clock::Millis;
use crate::db::Db;

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

pub(crate) fn device_from_row(row: &AnyRow) -> Result<DeviceInfo> {
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
