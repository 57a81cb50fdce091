//! Group commit for the refresh grant on SQLite.
//!
//! SQLite has one writer, and sqlx runs each statement on a connection's own thread, so a
//! rotation done alone costs several cross-thread hand-offs (begin, three statements, commit)
//! and throughput is bound by their latency, not by CPU. Under load, the rotator gathers the
//! refreshes waiting in its queue and commits them in one transaction with one statement per
//! step for the whole batch. Only the ordinary case is batched: a live token, presented once in
//! the batch by its own client with an allowed scope. Everything else (unknown, retired, revoked,
//! expired, wrong client, a token twice in one batch) is answered "fall back", and the caller
//! runs the one-at-a-time path in `grants::rotate`, which decides and records it.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::grants::{scope_within, Grant};
use super::{Origin, Result};
use crate::clock::{secs, Clock, Millis};
use crate::config::TokenPolicy;
use crate::db::Db;
use crate::secret::{new_token, token_hash, Secret, TokenKind};

const MAX_BATCH: usize = 128;

pub struct Request {
    pub token_hash: Vec<u8>,
    pub client_id: String,
    pub requested_scope: Option<String>,
    pub origin: Origin,
}

/// `None`: not handled here; run the one-at-a-time path.
type Reply = Option<Grant>;

struct Pending {
    request: Request,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct Rotator {
    tx: mpsc::Sender<Pending>,
}

impl Rotator {
    pub fn spawn(db: Db, policy: TokenPolicy, clock: std::sync::Arc<dyn Clock>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let now = clock.now_ms();
                let started = std::time::Instant::now();
                let requests: Vec<&Request> = batch.iter().map(|p| &p.request).collect();
                let replies = match rotate_batch(&db, &policy, &requests, now).await {
                    Ok(replies) => replies,
                    Err(e) => {
                        tracing::warn!(error = %e, size = batch.len(), "batched rotation failed; falling back");
                        batch.iter().map(|_| None).collect()
                    }
                };
                tracing::trace!(
                    size = batch.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "rotation batch"
                );
                for (pending, reply) in batch.drain(..).zip(replies) {
                    let _ = pending.reply.send(reply);
                }
            }
        });
        Self { tx }
    }

    /// Rotates in the next batch; `None` if the caller must take the one-at-a-time path.
    pub async fn rotate(&self, request: Request) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Pending { request, reply }).await.ok()?;
        rx.await.ok().flatten()
    }
}

fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Eligible<'a> {
    index: usize,
    request: &'a Request,
    session_id: String,
    parent_generation: i64,
    scope: String,
    successor: Secret<String>,
}

async fn rotate_batch(
    db: &Db,
    policy: &TokenPolicy,
    requests: &[&Request],
    now: Millis,
) -> Result<Vec<Reply>> {
    let mut replies: Vec<Reply> = requests.iter().map(|_| None).collect();
    let mut tx = db.write().begin().await?;

    // Which tokens are live, with their session's client and scope.
    let sql = format!(
        "SELECT t.token_hash, t.session_id, t.generation, s.client_id, s.scope \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         WHERE t.token_hash IN ({}) AND t.state = 'active' AND t.expires_at > $1 AND s.revoked_at IS NULL",
        placeholders(2, requests.len())
    );
    let mut query = sqlx::query(&sql).bind(now);
    for r in requests {
        query = query.bind(&r.token_hash);
    }
    let mut live: HashMap<Vec<u8>, (String, i64, String, String)> = HashMap::new();
    for row in query.fetch_all(&mut *tx).await? {
        live.insert(
            row.try_get("token_hash")?,
            (
                row.try_get("session_id")?,
                row.try_get("generation")?,
                row.try_get("client_id")?,
                row.try_get("scope")?,
            ),
        );
    }
    let mut taken = HashSet::new();
    let mut eligible = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let Some((session_id, generation, client_id, granted)) = live.get(&request.token_hash)
        else {
            continue;
        };
        if !taken.insert(request.token_hash.as_slice()) || *client_id != request.client_id {
            continue;
        }
        let scope = match &request.requested_scope {
            Some(req) if !scope_within(req, granted) => continue,
            Some(req) => req.split_ascii_whitespace().collect::<Vec<_>>().join(" "),
            None => granted.clone(),
        };
        eligible.push(Eligible {
            index,
            request,
            session_id: session_id.clone(),
            parent_generation: *generation,
            scope,
            successor: new_token(TokenKind::RefreshToken),
        });
    }
    if eligible.is_empty() {
        return Ok(replies);
    }
    let n = eligible.len();

    // Retire the presented tokens, recording where each was used from.
    let case = |column: &str, key: &str, base: usize| {
        let arms: String = (0..n)
            .map(|i| format!(" WHEN ${} THEN ${}", base + 2 * i, base + 2 * i + 1))
            .collect();
        format!("{column} = CASE {key}{arms} END")
    };
    let sql = format!(
        "UPDATE refresh_tokens SET state = 'rotated', retired_reason = 'rotated', used_at = $1, {}, {} \
         WHERE token_hash IN ({})",
        case("used_ip", "token_hash", 2),
        case("used_user_agent", "token_hash", 2 + 2 * n),
        placeholders(2 + 4 * n, n)
    );
    let mut query = sqlx::query(&sql).bind(now);
    for e in &eligible {
        query = query
            .bind(&e.request.token_hash)
            .bind(e.request.origin.ip.as_deref());
    }
    for e in &eligible {
        query = query
            .bind(&e.request.token_hash)
            .bind(e.request.origin.user_agent.as_deref());
    }
    for e in &eligible {
        query = query.bind(&e.request.token_hash);
    }
    query.execute(&mut *tx).await?;

    // Advance each session: last use, last address, next generation.
    let sql = format!(
        "UPDATE sessions SET last_used_at = $1, {}, {}, generation = generation + 1 WHERE id IN ({}) \
         RETURNING id, user_id, auth_time, expires_at, generation",
        case("last_ip", "id", 2),
        case("last_user_agent", "id", 2 + 2 * n),
        placeholders(2 + 4 * n, n)
    );
    let mut query = sqlx::query(&sql).bind(now);
    for e in &eligible {
        query = query
            .bind(&e.session_id)
            .bind(e.request.origin.ip.as_deref());
    }
    for e in &eligible {
        query = query
            .bind(&e.session_id)
            .bind(e.request.origin.user_agent.as_deref());
    }
    for e in &eligible {
        query = query.bind(&e.session_id);
    }
    let mut sessions: HashMap<String, (String, i64, i64, i64)> = HashMap::new();
    for row in query.fetch_all(&mut *tx).await? {
        sessions.insert(
            row.try_get("id")?,
            (
                row.try_get("user_id")?,
                row.try_get("auth_time")?,
                row.try_get("expires_at")?,
                row.try_get("generation")?,
            ),
        );
    }

    // The successors: one live token per family again.
    let values = (0..n)
        .map(|i| {
            let b = 2 + 7 * i;
            format!(
                "(${b}, ${}, ${}, ${}, 'active', $1, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO refresh_tokens (token_hash, session_id, generation, parent_generation, state, issued_at, \
         expires_at, issued_ip, issued_user_agent) VALUES {values}"
    );
    let mut query = sqlx::query(&sql).bind(now);
    let idle_until = now + secs(policy.family_idle_secs);
    let mut expiries = Vec::with_capacity(n);
    for e in &eligible {
        let Some((_, _, session_expires, generation)) = sessions.get(&e.session_id) else {
            // Cannot happen with one writer; never commit a half-done batch if it does.
            return Ok(requests.iter().map(|_| None).collect());
        };
        let expires = idle_until.min(*session_expires);
        expiries.push(expires);
        query = query
            .bind(token_hash(e.successor.expose()))
            .bind(&e.session_id)
            .bind(*generation)
            .bind(e.parent_generation)
            .bind(expires)
            .bind(e.request.origin.ip.as_deref())
            .bind(e.request.origin.user_agent.as_deref());
    }
    query.execute(&mut *tx).await?;
    tx.commit().await?;

    for (e, expires) in eligible.into_iter().zip(expiries) {
        let (user_id, auth_time, _, _) = sessions.remove(&e.session_id).expect("checked above");
        replies[e.index] = Some(Grant {
            session_id: e.session_id,
            user_id,
            client_id: e.request.client_id.clone(),
            scope: e.scope,
            auth_time,
            nonce: None,
            refresh_token: e.successor,
            refresh_expires_at: expires,
        });
    }
    Ok(replies)
}
