//! Sign-in throttling per account and per address. Attempts live in the database so the limits
//! hold across replicas and restarts, and every attempt is recorded *before* its password is
//! checked: parallel guesses each see the others, so a burst cannot slip past the limit.

use sqlx::Row;

use super::Result;
use crate::clock::{secs, Millis};
use crate::config::SignInPolicy;
use crate::db::Db;
use crate::secret::new_id;

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

/// A recorded sign-in attempt; it stays a failure unless `succeeded` or `withdraw` removes it.
pub struct Attempt {
    id: String,
    email: String,
}

/// Records the attempt, then counts. If a limit is exceeded the attempt is withdrawn and the
/// answer says which limit and how many milliseconds until the next attempt is allowed.
pub async fn attempt(
    db: &Db,
    policy: &SignInPolicy,
    email: &str,
    ip: Option<&str>,
    now: Millis,
) -> Result<std::result::Result<Attempt, (Limited, Millis)>> {
    let attempt = Attempt {
        id: new_id(),
        email: email.to_string(),
    };
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
    let mut tx = db.begin_write().await?;
    for (_, key, _) in &subjects {
        sqlx::query("INSERT INTO signin_failures (subject, at, attempt_id) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(now)
            .bind(&attempt.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let window = secs(policy.failure_window_secs);
    for (which, key, max) in subjects {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM signin_failures WHERE subject = $1 AND at > $2",
        )
        .bind(&key)
        .bind(now - window)
        .fetch_one(db.read())
        .await?;
        let n: i64 = row.try_get("n")?;
        // `n` includes this attempt: the first `max` attempts in a window are allowed.
        if n > i64::from(max) {
            withdraw(db, &attempt).await?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            let wait = oldest.map_or(window, |o| (o + window - now).max(1000));
            return Ok(Err((which, wait)));
        }
    }
    Ok(Ok(attempt))
}

async fn withdraw(db: &Db, attempt: &Attempt) -> Result<()> {
    sqlx::query("DELETE FROM signin_failures WHERE attempt_id = $1")
        .bind(&attempt.id)
        .execute(db.write())
        .await?;
    Ok(())
}

/// The password was right: the attempt does not count, and the account's earlier failures are
/// forgiven (the address's are not).
pub async fn succeeded(db: &Db, attempt: Attempt) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM signin_failures WHERE attempt_id = $1 OR subject = $2")
        .bind(&attempt.id)
        .bind(account_key(&attempt.email))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
