//! The audit log: who did what to whom, when, from where and why.
//!
//! Append-only: this module has no update or delete, and the database refuses both with a
//! trigger. Each record carries an HMAC-SHA256 of itself and of the record before it (chained
//! from a fixed genesis value), under a key derived from the master key, which the database
//! never holds: whoever can only write the database can edit, insert or remove a record, but
//! cannot make the chain agree again. What the chain alone cannot show is a cut-off tail (the
//! records after the cut are simply gone, and `audit_head` is as writable as the rest), or the
//! whole log swapped for an older copy: signed checkpoints kept outside the database (see
//! `crate::checkpoint`) close both. Records written before the chain was keyed carry a plain
//! SHA-256 link; they are accepted only before the first keyed one. docs/security.md says
//! exactly what is and is not detectable.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Origin, Result, StoreError};
use crate::clock::Millis;
use crate::crypto::MasterKey;
use crate::db::{Db, Tx};
use crate::secret::Secret;
use latchkey_proto::{ActorKind, SessionId, Timestamp, UserId};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key of the audit chain (HMAC-SHA256), derived from the master key so that every replica
/// sharing it chains alike.
#[derive(Clone)]
pub struct ChainKey(Arc<Secret<[u8; 32]>>);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

impl ChainKey {
    pub fn derive(master: &MasterKey) -> Self {
        Self(Arc::new(master.derive("latchkey audit chain v1")))
    }

    fn link(&self, prev_hash: &str, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose())
            .expect("HMAC takes a key of any length");
        mac.update(prev_hash.as_bytes());
        mac.update(b"\n");
        mac.update(body.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    /// Whoever runs the `latchkeyd` command line on the server (named by their login).
    Operator(&'a str),
}

impl<'a> Actor<'a> {
    pub fn kind(self) -> ActorKind {
        match self {
            Actor::System => ActorKind::System,
            Actor::User(_) => ActorKind::User,
            Actor::Support(_) => ActorKind::Support,
            Actor::Client(_) => ActorKind::Client,
            Actor::Operator(_) => ActorKind::Operator,
        }
    }

    pub fn id(self) -> Option<&'a str> {
        match self {
            Actor::System => None,
            Actor::User(id) | Actor::Support(id) | Actor::Client(id) | Actor::Operator(id) => {
                Some(id)
            }
        }
    }

    /// How this actor is stored where one column names it (`revoked_by`, `acknowledged_by`):
    /// `kind:id`, or the kind alone.
    pub fn tag(self) -> String {
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

fn body(record: &Hashed<'_>) -> String {
    serde_json::to_string(record).expect("plain strings and numbers serialize")
}

/// The unkeyed link of records written before the chain was keyed.
fn legacy_link(prev_hash: &str, body: &str) -> String {
    let digest = Sha256::new()
        .chain_update(prev_hash.as_bytes())
        .chain_update(b"\n")
        .chain_update(body.as_bytes())
        .finalize();
    hex(&digest)
}

/// Appends one record inside the caller's transaction. Taking the head row serializes
/// writers (on PostgreSQL it is a row lock held to commit), so the chain has no forks.
pub async fn append(conn: &mut Tx, entry: Entry<'_>, now: Millis) -> Result<i64> {
    let key = conn.chain_key().cloned().ok_or_else(|| {
        StoreError::Invalid("the audit log is written only with the master key loaded".into())
    })?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let details = entry.details.to_string();
    let hashed = Hashed {
        seq,
        at: now,
        actor_kind: entry.actor.kind().as_str(),
        actor_id: entry.actor.id(),
        action: entry.action,
        target_user_id: entry.target_user_id,
        target_session_id: entry.target_session_id,
        reason: entry.reason,
        ip: entry.origin.ip.as_deref(),
        user_agent: entry.origin.user_agent.as_deref(),
        details: &details,
    };
    let hash = key.link(&prev_hash, &body(&hashed));
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
    .execute(&mut **conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut **conn)
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

pub use latchkey_proto::AuditRecord as Record;

const COLUMNS: &str =
    "seq, at, actor_kind, actor_id, action, target_user_id, target_session_id, reason, ip, \
     user_agent, details, prev_hash, hash";

/// A record as stored, with `details` and `actor_kind` kept as their exact text (the hash
/// covers that text, and verification must report an edited kind as a broken link, not fail
/// to read it).
struct Stored {
    record: Record,
    details_text: String,
    actor_kind_text: String,
}

impl Stored {
    /// The record, if its actor kind is one this version knows.
    fn known(self) -> Result<Record> {
        if self.record.actor_kind.as_str() != self.actor_kind_text {
            return Err(sqlx::Error::ColumnDecode {
                index: "actor_kind".into(),
                source: Box::new(latchkey_proto::UnknownName(self.actor_kind_text)),
            }
            .into());
        }
        Ok(self.record)
    }
}

fn from_row(row: &AnyRow) -> Result<Stored> {
    let details_text: String = row.try_get("details")?;
    let actor_kind_text: String = row.try_get("actor_kind")?;
    Ok(Stored {
        record: Record {
            seq: row.try_get("seq")?,
            at: Timestamp::from_millis(row.try_get("at")?),
            actor_kind: actor_kind_text.parse().unwrap_or(ActorKind::System),
            actor_id: row.try_get("actor_id")?,
            actor_email: None,
            action: row.try_get("action")?,
            target_user_id: row
                .try_get::<Option<String>, _>("target_user_id")?
                .map(UserId::from),
            target_session_id: row
                .try_get::<Option<String>, _>("target_session_id")?
                .map(SessionId::from),
            reason: row.try_get("reason")?,
            ip: row.try_get("ip")?,
            user_agent: row.try_get("user_agent")?,
            details: serde_json::from_str(&details_text).unwrap_or(serde_json::Value::Null),
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        },
        details_text,
        actor_kind_text,
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
        "SELECT {COLUMNS}, (SELECT email FROM users WHERE users.id = audit_log.actor_id) \
         AS actor_email FROM audit_log WHERE \
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
    rows.iter()
        .map(|r| {
            let mut record = from_row(r)?.known()?;
            record.actor_email = r.try_get("actor_email")?;
            Ok(record)
        })
        .collect()
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

/// A point of the chain vouched for from outside the database: the log had `records`
/// records, the last with this hash (a checkpoint whose signature was already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub records: i64,
    pub head: String,
    /// When it was taken, and where it was read from (for the report).
    pub at: Millis,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        records: i64,
        head: String,
        /// Records at the start of the log written before the chain was keyed.
        unkeyed: i64,
        /// How many anchors were checked, and the newest of them.
        anchors: usize,
        newest_anchor: Option<Anchor>,
    },
    Broken {
        seq: i64,
        problem: String,
    },
}

/// Walks the whole chain and recomputes every link, and checks that each anchor's record is
/// still there, unchanged.
pub async fn verify(db: &Db, key: &ChainKey, anchors: &[Anchor]) -> Result<Verdict> {
    let mut anchors: Vec<&Anchor> = anchors.iter().collect();
    anchors.sort_by_key(|a| a.records);
    let mut pending = anchors.iter().peekable();
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    let mut keyed = false;
    let mut unkeyed = 0;
    let anchor_broken = |a: &Anchor| {
        format!(
            "it differs from the checkpoint of {} ({}, {} records): records up to it were rewritten",
            crate::clock::rfc3339::format(a.at),
            a.source,
            a.records
        )
    };
    // A checkpoint of the empty log.
    while let Some(a) = pending.next_if(|a| a.records == 0) {
        if a.head != GENESIS {
            return Ok(Verdict::Broken {
                seq: 0,
                problem: anchor_broken(a),
            });
        }
    }
    loop {
        let page = page_after(db, expected_seq - 1).await?;
        for Stored {
            record: r,
            details_text,
            actor_kind_text,
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
            let body = body(&Hashed {
                seq: r.seq,
                at: r.at.millis(),
                actor_kind: actor_kind_text,
                actor_id: r.actor_id.as_deref(),
                action: &r.action,
                target_user_id: r.target_user_id.as_deref(),
                target_session_id: r.target_session_id.as_deref(),
                reason: r.reason.as_deref(),
                ip: r.ip.as_deref(),
                user_agent: r.user_agent.as_deref(),
                details: details_text,
            });
            if key.link(&prev, &body) == r.hash {
                keyed = true;
            } else if !keyed && legacy_link(&prev, &body) == r.hash {
                unkeyed += 1;
            } else {
                return broken(
                    "its content does not match its link (the record was edited, or written without this server's master key)"
                        .into(),
                );
            }
            while let Some(a) = pending.next_if(|a| a.records == r.seq) {
                if a.head != r.hash {
                    return broken(anchor_broken(a));
                }
            }
            prev = r.hash.clone();
            expected_seq += 1;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let records = expected_seq - 1;
    if let Some(a) = pending.next() {
        return Ok(Verdict::Broken {
            seq: records + 1,
            problem: format!(
                "the log ends at record {records}, but the checkpoint of {} ({}) saw {} records: records were removed from the end",
                crate::clock::rfc3339::format(a.at),
                a.source,
                a.records
            ),
        });
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.read())
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
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
        unkeyed,
        anchors: anchors.len(),
        newest_anchor: anchors.last().map(|a| (*a).clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_covers_every_field_the_link_before_and_the_key() {
        let key = ChainKey::derive(&MasterKey::generate());
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
        let h = key.link(GENESIS, &body(&base));
        assert_eq!(h.len(), 64);
        assert_ne!(h, key.link(&h, &body(&base)), "the link is covered");
        let edited = Hashed {
            reason: Some("ticket 43"),
            ..base
        };
        assert_ne!(
            h,
            key.link(GENESIS, &body(&edited)),
            "the reason is covered"
        );
        let other = ChainKey::derive(&MasterKey::generate());
        assert_ne!(h, other.link(GENESIS, &body(&base)), "the key is covered");
        assert_ne!(
            h,
            legacy_link(GENESIS, &body(&base)),
            "keyed is not plain SHA-256"
        );
    }
}
