//! The audit log: who did what to whom, when, from where and why.
//!
//! Append-only: this module has no update or delete, and the database refuses both with a
//! trigger. Each record carries the SHA-256 of the one before it, chained from a fixed genesis
//! value, and `audit_head` holds the last sequence number and hash, so `verify` finds an edited
//! record, a deleted one (a gap or a broken link) and a deleted tail (the head no longer
//! matches).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::{Origin, Result};
use crate::clock::Millis;
use crate::db::Db;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// latchkeyd itself (reuse detection, limits, signals).
    System,
    /// The account holder, through the account API or a sign-in.
    User(&'a str),
    /// A support-staff member, through the support API.
    Support(&'a str),
    /// An OAuth client, through RFC 7009 revocation.
    Client(&'a str),
}

impl<'a> Actor<'a> {
    pub fn kind(self) -> &'static str {
        match self {
            Actor::System => "system",
            Actor::User(_) => "user",
            Actor::Support(_) => "support",
            Actor::Client(_) => "client",
        }
    }

    pub fn id(self) -> Option<&'a str> {
        match self {
            Actor::System => None,
            Actor::User(id) | Actor::Support(id) | Actor::Client(id) => Some(id),
        }
    }

    /// How a revocation by this actor is stored on the session (`revoked_by`).
    pub fn revoked_by(self) -> String {
        match self.id() {
            Some(id) => format!("{}:{id}", self.kind()),
            None => self.kind().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: Actor<'a>,
    pub action: &'a str,
    pub target_user_id: Option<&'a str>,
    pub target_session_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub origin: &'a Origin,
    pub details: serde_json::Value,
}

/// The fields a record's hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: i64,
    actor_kind: &'a str,
    actor_id: Option<&'a str>,
    action: &'a str,
    target_user_id: Option<&'a str>,
    target_session_id: Option<&'a str>,
    reason: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    details: &'a str,
}

fn chain_hash(prev_hash: &str, record: &Hashed<'_>) -> String {
    let body = serde_json::to_string(record).expect("plain strings and numbers serialize");
    let digest = Sha256::new()
        .chain_update(prev_hash.as_bytes())
        .chain_update(b"\n")
        .chain_update(body.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one record inside the caller's transaction. Taking the head row serializes
/// writers (on PostgreSQL it is a row lock held to commit), so the chain has no forks.
pub async fn append(conn: &mut AnyConnection, entry: Entry<'_>, now: Millis) -> Result<i64> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let details = entry.details.to_string();
    let hashed = Hashed {
        seq,
        at: now,
        actor_kind: entry.actor.kind(),
        actor_id: entry.actor.id(),
        action: entry.action,
        target_user_id: entry.target_user_id,
        target_session_id: entry.target_session_id,
        reason: entry.reason,
        ip: entry.origin.ip.as_deref(),
        user_agent: entry.origin.user_agent.as_deref(),
        details: &details,
    };
    let hash = chain_hash(&prev_hash, &hashed);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor_kind, actor_id, action, target_user_id, target_session_id, reason, \
         ip, user_agent, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(seq)
    .bind(now)
    .bind(hashed.actor_kind)
    .bind(hashed.actor_id)
    .bind(hashed.action)
    .bind(hashed.target_user_id)
    .bind(hashed.target_session_id)
    .bind(hashed.reason)
    .bind(hashed.ip)
    .bind(hashed.user_agent)
    .bind(&details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// Appends one record in a transaction of its own.
pub async fn append_alone(db: &Db, entry: Entry<'_>, now: Millis) -> Result<i64> {
    let mut tx = db.begin_write().await?;
    let seq = append(&mut tx, entry, now).await?;
    tx.commit().await?;
    Ok(seq)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Record {
    pub seq: i64,
    #[serde(with = "crate::http::api::time_format")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Millis,
    /// `system`, `user`, `support` or `client`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_user_id: Option<String>,
    pub target_session_id: Option<String>,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str =
    "seq, at, actor_kind, actor_id, action, target_user_id, target_session_id, reason, ip, \
     user_agent, details, prev_hash, hash";

/// A record as stored, with `details` kept as its exact text (the hash covers that text).
struct Stored {
    record: Record,
    details_text: String,
}

fn from_row(row: &AnyRow) -> Result<Stored> {
    let details_text: String = row.try_get("details")?;
    Ok(Stored {
        record: Record {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            actor_kind: row.try_get("actor_kind")?,
            actor_id: row.try_get("actor_id")?,
            action: row.try_get("action")?,
            target_user_id: row.try_get("target_user_id")?,
            target_session_id: row.try_get("target_session_id")?,
            reason: row.try_get("reason")?,
            ip: row.try_get("ip")?,
            user_agent: row.try_get("user_agent")?,
            details: serde_json::from_str(&details_text).unwrap_or(serde_json::Value::Null),
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        },
        details_text,
    })
}

/// Which records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor_id: Option<String>,
    pub target_user_id: Option<String>,
    pub target_session_id: Option<String>,
    /// An exact action, or a prefix ending in `.` (`admin.` for every staff action).
    pub action: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Only records before this sequence number (the paging cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

pub async fn list(db: &Db, f: &Filter) -> Result<Vec<Record>> {
    // Absent filters bind NULL and match everything, so one statement serves every combination.
    let (action_exact, action_prefix) = match f.action.as_deref() {
        Some(a) if a.ends_with('.') => (None, Some(format!("{a}%"))),
        Some(a) => (Some(a.to_string()), None),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE \
         ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR target_user_id = $2) \
         AND ($3 IS NULL OR target_session_id = $3) AND ($4 IS NULL OR action = $4) \
         AND ($5 IS NULL OR action LIKE $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
         AND ($8 IS NULL OR seq < $8) ORDER BY seq DESC LIMIT $9"
    ))
    .bind(f.actor_id.as_deref())
    .bind(f.target_user_id.as_deref())
    .bind(f.target_session_id.as_deref())
    .bind(action_exact.as_deref())
    .bind(action_prefix.as_deref())
    .bind(f.since)
    .bind(f.until)
    .bind(f.before_seq)
    .bind(f.limit)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(|r| Ok(from_row(r)?.record)).collect()
}

const PAGE: i64 = 1000;

/// Every record from `after_seq` on, oldest first, a page at a time.
pub async fn export(
    db: &Db,
    after_seq: i64,
    mut each: impl FnMut(&Record) -> std::io::Result<()>,
) -> anyhow::Result<u64> {
    let mut after = after_seq;
    let mut count = 0;
    loop {
        let page = page_after(db, after).await?;
        for stored in &page {
            each(&stored.record)?;
            count += 1;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.record.seq,
            _ => return Ok(count),
        }
    }
}

async fn page_after(db: &Db, after: i64) -> Result<Vec<Stored>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after)
    .bind(PAGE)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact { records: i64, head: String },
    Broken { seq: i64, problem: String },
}

/// Walks the whole chain and recomputes every hash.
pub async fn verify(db: &Db) -> Result<Verdict> {
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    loop {
        let page = page_after(db, expected_seq - 1).await?;
        for Stored {
            record: r,
            details_text,
        } in &page
        {
            let broken = |problem: String| {
                Ok(Verdict::Broken {
                    seq: r.seq,
                    problem,
                })
            };
            if r.seq != expected_seq {
                return broken(format!(
                    "record {expected_seq} is missing (the next one is {})",
                    r.seq
                ));
            }
            if r.prev_hash != prev {
                return broken("its link to the record before does not match".into());
            }
            let recomputed = chain_hash(
                &prev,
                &Hashed {
                    seq: r.seq,
                    at: r.at,
                    actor_kind: &r.actor_kind,
                    actor_id: r.actor_id.as_deref(),
                    action: &r.action,
                    target_user_id: r.target_user_id.as_deref(),
                    target_session_id: r.target_session_id.as_deref(),
                    reason: r.reason.as_deref(),
                    ip: r.ip.as_deref(),
                    user_agent: r.user_agent.as_deref(),
                    details: details_text,
                },
            );
            if recomputed != r.hash {
                return broken(
                    "its content does not match its hash (the record was edited)".into(),
                );
            }
            prev = r.hash.clone();
            expected_seq += 1;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.read())
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    let records = expected_seq - 1;
    if head_seq != records || head_hash != prev {
        return Ok(Verdict::Broken {
            seq: records + 1,
            problem: format!(
                "the log ends at record {records} but its head says {head_seq}: records were removed from the end"
            ),
        });
    }
    Ok(Verdict::Intact {
        records,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_link() {
        let base = Hashed {
            seq: 1,
            at: 1_000,
            actor_kind: "support",
            actor_id: Some("staff"),
            action: "admin.session.revoke",
            target_user_id: Some("u"),
            target_session_id: Some("s"),
            reason: Some("ticket 42"),
            ip: Some("10.0.0.1"),
            user_agent: None,
            details: "{}",
        };
        let h = chain_hash(GENESIS, &base);
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain_hash(&h, &base), "the link is covered");
        let edited = Hashed {
            reason: Some("ticket 43"),
            ..base
        };
        assert_ne!(h, chain_hash(GENESIS, &edited), "the reason is covered");
    }
}
