//! Sign-in throttling per account and per address. Attempts live in the database so the limits
//! hold across replicas and restarts, and every attempt is recorded *before* its password is
//! checked: parallel guesses each see the others, so a burst cannot slip past the limit.
//!
//! Three counts, so that no stranger can lock anyone out:
//! - an account *from one address* (IPv6: one /64) over its limit waits for the window to pass:
//!   that is the guesser, and the account holder elsewhere is not affected;
//! - an account over a much larger limit from all addresses together (a distributed guesser)
//!   is slowed down: each further attempt waits twice as long after the one before, up to a
//!   cap;
//! - an address over its limit (one guesser trying many accounts) is slowed down the same way:
//!   many people share an address, and a delay keeps them able to sign in.
//!
//! Throttled attempts are reported per subject and window (`throttle_reports`), not one event
//! each.

use serde_json::json;
use sqlx::Row;

use super::audit::Actor;
use super::events::{self, Audit, EventKind, NewEvent, Severity};
use super::{Origin, Result};
use crate::clock::{secs, Millis};
use crate::config::SignInPolicy;
use crate::db::Db;
use crate::limit::AddressKey;
use crate::secret::new_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Account,
    Address,
}

impl Limited {
    fn as_str(self) -> &'static str {
        match self {
            Limited::Account => "account",
            Limited::Address => "address",
        }
    }
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

/// An address by its network as the limits count it (IPv6 /64).
fn address_key(ip: &str) -> String {
    match AddressKey::parse(ip) {
        Some(key) => format!("address:{key}"),
        None => format!("address:{ip}"),
    }
}

/// A recorded sign-in attempt; it stays a failure unless `succeeded` or `withdraw` removes it.
pub struct Attempt {
    id: String,
    email: String,
}

/// A throttled attempt: which limit, its subject, and how many milliseconds until the next
/// attempt is allowed.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub which: Limited,
    pub wait: Millis,
    subject: String,
}

/// What happens past a limit: wait until the window has passed, or a growing delay.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Window,
    Backoff(Millis),
}

/// How long an address over its limit must wait after its latest failure: doubling with each
/// failure past the limit, up to the cap.
fn backoff(over_by: i64, cap: Millis) -> Millis {
    let doublings = u32::try_from(over_by.saturating_sub(1)).unwrap_or(u32::MAX);
    1000i64
        .checked_shl(doublings.min(40))
        .unwrap_or(Millis::MAX)
        .min(cap)
}

/// Records the attempt, then counts. If a limit is exceeded the attempt is withdrawn and the
/// answer says which limit and how long until the next attempt is allowed.
pub async fn attempt(
    db: &Db,
    policy: &SignInPolicy,
    email: &str,
    ip: Option<&str>,
    now: Millis,
) -> Result<std::result::Result<Attempt, Throttled>> {
    let attempt = Attempt {
        id: new_id(),
        email: email.to_string(),
    };
    let backoff_address = Rule::Backoff(secs(policy.address_backoff_max_secs));
    let backoff_account = Rule::Backoff(secs(policy.failure_window_secs));
    let mut subjects = vec![(
        Limited::Account,
        account_key(email),
        policy.max_failures_per_account_total,
        backoff_account,
    )];
    if let Some(ip) = ip {
        let address = address_key(ip);
        subjects.push((
            Limited::Account,
            format!("{}@{address}", account_key(email)),
            policy.max_failures_per_account,
            Rule::Window,
        ));
        subjects.push((
            Limited::Address,
            address,
            policy.max_failures_per_address,
            backoff_address,
        ));
    }
    let mut tx = db.begin_write().await?;
    for (_, key, _, _) in &subjects {
        sqlx::query("INSERT INTO signin_failures (subject, at, attempt_id) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(now)
            .bind(&attempt.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let window = secs(policy.failure_window_secs);
    for (which, subject, max, rule) in subjects {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest, MAX(CASE WHEN attempt_id <> $3 THEN at END) AS latest \
             FROM signin_failures WHERE subject = $1 AND at > $2",
        )
        .bind(&subject)
        .bind(now - window)
        .bind(&attempt.id)
        .fetch_one(db.read())
        .await?;
        let n: i64 = row.try_get("n")?;
        // `n` includes this attempt: the first `max` attempts in a window are allowed.
        let over_by = n - i64::from(max);
        if over_by <= 0 {
            continue;
        }
        let wait = match rule {
            Rule::Window => {
                let oldest: Option<i64> = row.try_get("oldest")?;
                Some(oldest.map_or(window, |o| (o + window - now).max(1000)))
            }
            Rule::Backoff(cap) => {
                let latest: Option<i64> = row.try_get("latest")?;
                let due = latest.unwrap_or(now) + backoff(over_by, cap);
                (due > now).then_some(due - now)
            }
        };
        if let Some(wait) = wait {
            withdraw(db, &attempt).await?;
            return Ok(Err(Throttled {
                which,
                wait,
                subject,
            }));
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
/// forgiven, from everywhere (the address's are not).
pub async fn succeeded(db: &Db, attempt: Attempt) -> Result<()> {
    let account = account_key(&attempt.email);
    let mut tx = db.begin_write().await?;
    // The account's count from each address is keyed `account:EMAIL@address:NET`.
    let from_addresses = format!("{account}@address:");
    sqlx::query(
        "DELETE FROM signin_failures WHERE attempt_id = $1 OR subject = $2 \
         OR substr(subject, 1, CAST($4 AS INTEGER)) = $3",
    )
    .bind(&attempt.id)
    .bind(&account)
    .bind(&from_addresses)
    .bind(from_addresses.chars().count() as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Counts a throttled attempt in its subject's report for the current window; the window's
/// first one is recorded as a `signin_throttled` event (and audit record) at once, the rest
/// only as the count that `close_reports` records when the window ends.
pub async fn report(
    db: &Db,
    throttled: &Throttled,
    user_id: Option<&str>,
    client_id: &str,
    origin: &Origin,
    policy: &SignInPolicy,
    now: Millis,
) -> Result<()> {
    let window = secs(policy.failure_window_secs).max(1);
    let window_start = now - now.rem_euclid(window);
    // An address's throttling is about whoever uses it, not the account someone typed.
    let user_id = user_id.filter(|_| throttled.which == Limited::Account);
    let mut tx = db.begin_write().await?;
    let attempts: i64 = sqlx::query(
        "INSERT INTO throttle_reports (subject, window_start, attempts, user_id, client_id) \
         VALUES ($1, $2, 1, $3, $4) ON CONFLICT (subject, window_start) \
         DO UPDATE SET attempts = throttle_reports.attempts + 1 RETURNING attempts",
    )
    .bind(&throttled.subject)
    .bind(window_start)
    .bind(user_id)
    .bind(client_id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("attempts")?;
    if attempts == 1 {
        events::record(
            &mut tx,
            NewEvent {
                kind: EventKind::SigninThrottled,
                severity: Severity::Medium,
                user_id,
                session_id: None,
                origin,
                details: json!({
                    "client_id": client_id,
                    "limited": throttled.which.as_str(),
                    "window_start": window_start,
                    "window_end": window_start + window,
                    "attempts": 1,
                }),
                audit: Audit::As(Actor::System),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Records, for each report whose window has ended, how many attempts it throttled in all
/// (when more than the first, already recorded), and forgets it. Taking the rows with the
/// DELETE makes each report closed once, whichever replica gets there first.
pub async fn close_reports(db: &Db, failure_window: Millis, now: Millis) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(
        "DELETE FROM throttle_reports WHERE window_start + $1 <= $2 \
         RETURNING subject, window_start, attempts, user_id, client_id",
    )
    .bind(failure_window.max(1))
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut recorded = 0;
    for row in &rows {
        let attempts: i64 = row.try_get("attempts")?;
        if attempts < 2 {
            continue;
        }
        let subject: String = row.try_get("subject")?;
        let user_id: Option<String> = row.try_get("user_id")?;
        let window_start: i64 = row.try_get("window_start")?;
        let limited = subject.split(':').next().unwrap_or_default().to_string();
        events::record(
            &mut tx,
            NewEvent {
                kind: EventKind::SigninThrottled,
                severity: Severity::Medium,
                user_id: user_id.as_deref(),
                session_id: None,
                origin: &Origin::default(),
                details: json!({
                    "client_id": row.try_get::<Option<String>, _>("client_id")?,
                    "limited": limited,
                    "window_start": window_start,
                    "window_end": window_start + failure_window,
                    "attempts": attempts,
                    "summary": true,
                }),
                audit: Audit::As(Actor::System),
            },
            now,
        )
        .await?;
        recorded += 1;
    }
    tx.commit().await?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_backoff_doubles_up_to_its_cap() {
        let cap = 60_000;
        assert_eq!(backoff(1, cap), 1_000);
        assert_eq!(backoff(2, cap), 2_000);
        assert_eq!(backoff(6, cap), 32_000);
        assert_eq!(backoff(7, cap), cap);
        assert_eq!(backoff(i64::MAX, cap), cap);
        assert_eq!(
            address_key("2001:db8::1"),
            address_key("2001:db8::ffff:1"),
            "one /64"
        );
        assert_eq!(address_key("10.1.2.3"), "address:10.1.2.3");
    }
}
