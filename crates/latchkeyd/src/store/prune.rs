//! Upkeep: deleting what has no use any more.

use super::Result;
use crate::clock::{secs, Millis};
use crate::db::Db;

/// Deletes what has no use any more: expired forms and codes, old throttle entries, Shared
/// Signals events past their retention or acknowledged.
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
    sqlx::query("DELETE FROM device_authorizations WHERE expires_at < $1")
        .bind(now)
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
    super::ssf::prune(&mut tx, now).await?;
    tx.commit().await?;
    Ok(())
}
