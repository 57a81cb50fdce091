//! Sign-in throttling per account and per address. Failures live in the database so the limits
//! hold across replicas and restarts.

use sqlx::Row;

use super::Result;
use crate::clock::{secs, Millis};
use crate::config::SignInPolicy;
use crate::db::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Account,
    Address,
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

/// If a limit is reached: which one and how many milliseconds until the next attempt is allowed.
pub async fn check(
    db: &Db,
    policy: &SignInPolicy,
    email: &str,
    ip: Option<&str>,
    now: Millis,
) -> Result<Option<(Limited, Millis)>> {
    let window = secs(policy.failure_window_secs);
    let mut subjects = vec![(
        Limited::Account,
        account_key(email),
        policy.max_failures_per_account,
    )];
    if let Some(ip) = ip {
        subjects.push((
            Limited::Address,
            address_key(ip),
            policy.max_failures_per_address,
        ));
    }
    for (which, key, max) in subjects {
        let row = sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM signin_failures WHERE subject = $1 AND at > $2")
            .bind(&key)
            .bind(now - window)
            .fetch_one(db.read())
            .await?;
        let n: i64 = row.try_get("n")?;
        if n >= i64::from(max) {
            let oldest: Option<i64> = row.try_get("oldest")?;
            let wait = oldest.map_or(window, |o| (o + window - now).max(1000));
            return Ok(Some((which, wait)));
        }
    }
    Ok(None)
}

pub async fn record_failure(db: &Db, email: &str, ip: Option<&str>, now: Millis) -> Result<()> {
    let mut tx = db.write().begin().await?;
    for key in std::iter::once(account_key(email)).chain(ip.map(address_key)) {
        sqlx::query("INSERT INTO signin_failures (subject, at) VALUES ($1, $2)")
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A successful sign-in forgives the account's earlier failures (not the address's).
pub async fn clear_account(db: &Db, email: &str) -> Result<()> {
    sqlx::query("DELETE FROM signin_failures WHERE subject = $1")
        .bind(account_key(email))
        .execute(db.write())
        .await?;
    Ok(())
}
