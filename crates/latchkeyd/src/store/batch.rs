//! Group commit for the refresh grant on SQLite.
//!
//! SQLite has one writer. sqlx runs each SQLite statement on its connection's own thread, so a
//! rotation costs a cross-thread hand-off per statement (begin, three statements, commit), and
//! on a small machine waking that thread costs far more than the work: throughput was bound by
//! hand-off latency, not CPU (docs/BENCHMARKS.md). The rotator is a writer thread of its own
//! with a rusqlite connection to the same file: it takes every refresh waiting in its queue,
//! rotates them one by one with statements prepared once inside one `BEGIN IMMEDIATE`
//! transaction, and commits once. One hand-off per batch, one commit per batch.
//!
//! Only the ordinary case is done here: a live token (its session's head), presented by its own
//! client with an allowed scope; retiring it is moving the head to its successor. Everything
//! else (unknown, retired, revoked, expired, wrong client, the second of two concurrent uses)
//! is answered "fall back", and the caller runs the one-at-a-time path in `grants::rotate`,
//! which decides and records it. That path and every other write go
//! through sqlx; SQLite serializes the two writers, and the busy timeout covers the rare wait.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Statement};
use tokio::sync::{mpsc, oneshot};

use super::grants::{
    refresh_expiry, refreshed_scope, Grant, INSERT_REFRESH_TOKEN, RATE_WINDOW_NEXT_COUNT,
    RATE_WINDOW_SET,
};
use super::Origin;
use crate::clock::{Clock, Millis};
use crate::config::TokenPolicy;
use crate::secret::{new_refresh_secret, refresh_token, RefreshTokenRef, Secret};
use crate::signals::{PriorUse, Use};

/// The most refreshes one batch takes. With more, the whole load bunches into the rotator:
/// the workers finish every reply and then wait, and the machine idles while one batch runs.
/// Capped at 24, replies start flowing while later refreshes wait for the next batch: against
/// 256 the machine idled less and served 6.6% and 8.3% more grants/s (medians of 6 and 8
/// pairs, docs/BENCHMARKS.md), though each grant costs the rotator slightly more.
const MAX_BATCH: usize = 24;

/// A batch smaller than this gives up the CPU up to `FILL_YIELDS` times before it starts, so
/// that workers sharing the core can hand over the refreshes they are parsing: every commit
/// has a fixed cost, and on two cores the rotator's time per grant (which every refresh waits
/// on) fell by a fifth with fuller batches. With nothing else to run, a yield returns at once.
/// Measured against 16/2 and 64/8 (docs/BENCHMARKS.md): both gave fewer grants/s.
const FILL_BELOW: usize = 32;
const FILL_YIELDS: u32 = 4;

pub struct Request {
    pub token: RefreshTokenRef,
    pub client_id: String,
    pub requested_scope: Option<String>,
    /// The thumbprint of the key proved with the request (DPoP), if any.
    pub dpop_jkt: Option<String>,
    /// A public client: an unbound family proving a key gets bound (on the one-at-a-time path).
    pub bind_dpop: bool,
    pub origin: Origin,
}

/// `None`: not handled here; run the one-at-a-time path.
type Reply = Option<Grant>;

struct Pending {
    request: Request,
    /// The successor's secret and its hash, made by the caller: the rotator's thread is the one
    /// every refresh waits on, so it does only what must be serial.
    successor: (Secret<[u8; 32]>, Vec<u8>),
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct Rotator {
    tx: mpsc::Sender<Pending>,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -32000;",
    )?;
    Ok(conn)
}

/// The rotator's statements, prepared once for its connection's lifetime: through the
/// statement cache, every use hashed the statement's text and every batch parsed its `BEGIN`
/// and `COMMIT` anew, all on the thread every refresh waits for.
struct Statements<'c> {
    conn: &'c Connection,
    begin: Statement<'c>,
    commit: Statement<'c>,
    select_live: Statement<'c>,
    insert: Statement<'c>,
    advance: Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        // The presented token and its session, if the token is live, with what the session's
        // window count becomes: the batch's transaction is the only writer, so `advance` makes
        // it so.
        let select_live = format!(
            "SELECT t.session_id, t.generation, s.client_id, s.scope, t.issued_at, t.issued_ip, \
             t.issued_user_agent, s.dpop_jkt, s.expires_at, s.user_id, s.auth_time, {} FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id \
             WHERE t.id = ?1 AND t.secret_hash = ?2 AND t.expires_at > ?3 AND s.head_token_id = t.id \
             AND s.revoked_at IS NULL",
            RATE_WINDOW_NEXT_COUNT.replace("$1", "?3")
        );
        // The session update of `grants::advance`, moving the family's head from the presented
        // token to the one just inserted, if the session is still at that head and its
        // generation (the select read both in this transaction; anything else rolls back). No
        // `RETURNING` here or in the insert: SQLite buffers a `RETURNING` statement's rows in an
        // ephemeral table, a temporary B-tree per statement; the row id comes from the insert.
        let advance = format!(
            "UPDATE sessions SET last_used_at = ?1, last_ip = ?2, last_user_agent = ?3, generation = generation + 1, \
             head_token_id = ?5, {} WHERE id = ?4 AND generation = ?6 AND head_token_id = ?7",
            RATE_WINDOW_SET.replace("$1", "?1")
        );
        Ok(Self {
            conn,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            select_live: conn.prepare(&select_live)?,
            insert: conn.prepare(&INSERT_REFRESH_TOKEN.replace('$', "?"))?,
            advance: conn.prepare(&advance)?,
        })
    }
}

impl Rotator {
    /// Starts the writer thread on the SQLite file; the thread ends when the last handle drops.
    /// A database the statements do not fit fails the start-up, not the first refresh.
    pub fn spawn(path: &Path, policy: TokenPolicy, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let path = path.to_path_buf();
        let (tx, mut rx) = mpsc::channel::<Pending>(8192);
        let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("latchkey-rotator".into())
            .spawn(move || {
                // The statements borrow the connection, so both live on this thread.
                let conn = match open(&path) {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut statements = match Statements::prepare(&conn) {
                    Ok(statements) => statements,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut batch = Vec::with_capacity(MAX_BATCH);
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    let mut yields = 0;
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) if batch.len() < FILL_BELOW && yields < FILL_YIELDS => {
                                yields += 1;
                                std::thread::yield_now();
                            }
                            Err(_) => break,
                        }
                    }
                    let replies = match rotate_batch(&mut statements, &policy, &batch, clock.now_ms()) {
                        Ok(replies) => replies,
                        Err(e) => {
                            tracing::warn!(error = %e, size = batch.len(), "batched rotation failed; falling back");
                            batch.iter().map(|_| None).collect()
                        }
                    };
                    tracing::trace!(size = batch.len(), "rotation batch committed");
                    for (pending, reply) in batch.drain(..).zip(replies) {
                        let _ = pending.reply.send(reply);
                    }
                }
            })?;
        ready
            .recv()
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        Ok(Self { tx })
    }

    /// Rotates in the next batch; `None` if the caller must take the one-at-a-time path.
    pub async fn rotate(&self, request: Request) -> Reply {
        let (reply, rx) = oneshot::channel();
        let successor = new_refresh_secret();
        self.tx
            .send(Pending {
                request,
                successor,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }
}

fn rotate_batch(
    s: &mut Statements<'_>,
    policy: &TokenPolicy,
    batch: &[Pending],
    now: Millis,
) -> rusqlite::Result<Vec<Reply>> {
    s.begin.execute([])?;
    let mut rotate_all = || {
        let mut replies = Vec::with_capacity(batch.len());
        for pending in batch {
            // A request abandoned (timed out, client gone) before its turn is not rotated: its
            // client would never learn the successor and its retry would look like reuse.
            if pending.reply.is_closed() {
                replies.push(None);
                continue;
            }
            replies.push(rotate_one(s, policy, pending, now)?);
        }
        s.commit.execute([])?;
        Ok(replies)
    };
    let result = rotate_all();
    // Nothing of a failed batch may stay: its refreshes are all retried one at a time.
    if result.is_err() && !s.conn.is_autocommit() {
        s.conn.execute_batch("ROLLBACK")?;
    }
    result
}

/// The presented token and its session, when the token is live.
struct Live {
    session_id: String,
    generation: i64,
    client_id: String,
    scope: String,
    prior: PriorUse,
    dpop_jkt: Option<String>,
    session_expires: Millis,
    user_id: String,
    auth_time: Millis,
    /// The session's refresh count in its one-minute window, this refresh included.
    in_window: i64,
}

fn rotate_one(
    s: &mut Statements<'_>,
    policy: &TokenPolicy,
    Pending {
        request: r,
        successor: (secret, secret_hash),
        ..
    }: &Pending,
    now: Millis,
) -> rusqlite::Result<Reply> {
    let live = s
        .select_live
        .query_row(params![r.token.id, r.token.secret_hash, now], |row| {
            Ok(Live {
                session_id: row.get(0)?,
                generation: row.get(1)?,
                client_id: row.get(2)?,
                scope: row.get(3)?,
                prior: PriorUse {
                    at: row.get(4)?,
                    ip: row.get(5)?,
                    user_agent: row.get(6)?,
                },
                dpop_jkt: row.get(7)?,
                session_expires: row.get(8)?,
                user_id: row.get(9)?,
                auth_time: row.get(10)?,
                in_window: row.get(11)?,
            })
        })
        .optional()?;
    let Some(Live {
        session_id,
        generation: parent,
        client_id,
        scope: granted,
        prior,
        dpop_jkt: bound,
        session_expires,
        user_id,
        auth_time,
        in_window,
    }) = live
    else {
        return Ok(None);
    };
    // A key mismatch is decided and recorded, and a new binding made, on the one-at-a-time path.
    let rebind = bound.is_none() && r.dpop_jkt.is_some() && r.bind_dpop;
    if client_id != r.client_id || (bound.is_some() && bound != r.dpop_jkt) || rebind {
        return Ok(None);
    }
    let Some(scope) = refreshed_scope(r.requested_scope.as_deref(), granted) else {
        return Ok(None);
    };
    let (ip, ua) = (r.origin.ip.as_deref(), r.origin.user_agent.as_deref());
    // The live token's generation is the session's, so its successor's is the next one; the
    // session update below confirms it (a mismatch rolls the whole batch back).
    let generation = parent + 1;
    let expires = refresh_expiry(policy, now, session_expires);
    let id = s.insert.insert(params![
        secret_hash,
        session_id,
        generation,
        parent,
        r.token.id,
        now,
        expires,
        ip,
        ua
    ])?;
    let advanced = s
        .advance
        .execute(params![now, ip, ua, session_id, id, parent, r.token.id])?;
    if advanced != 1 {
        return Err(rusqlite::Error::StatementChangedRows(advanced));
    }
    let successor = refresh_token(id, secret);
    Ok(Some(Grant {
        session_id,
        user_id,
        client_id,
        scope,
        auth_time,
        nonce: None,
        refresh_token: successor,
        refresh_expires_at: expires,
        dpop_jkt: bound,
        used: Some(Use {
            prior,
            in_window,
            generation,
        }),
    }))
}
