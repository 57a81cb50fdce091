//! The rotation writer: group commit of refreshes, on SQLite and PostgreSQL alike.
//!
//! Every refresh is handed to one task that takes whatever refreshes are waiting, up to
//! [`MAX_BATCH`], and runs them together:
//!
//! 1. load every presented token with its session and its session's head (`sql::load`);
//! 2. decide each refresh (`decide::decide`) and assess its suspicion signals (`plan.rs`);
//! 3. write the successors and move the heads for the whole batch at once, each head only if
//!    its session is still where its rotation was decided; then whatever is rarer (grace
//!    replays, events, revocations) one by one;
//! 4. answer every refresh once what it wrote has committed.
//!
//! A batch with more to write than successors and heads runs in one transaction that first
//! takes its sessions' locks in session id order (on SQLite the write transaction holds the
//! database). On PostgreSQL, a batch that only rotates and refuses runs without: two
//! statements, the second its own commit ([`run_unlocked`]).
//!
//! A commit is the costly part of a rotation (a flush to disk, a round trip); one commit for
//! many refreshes is what lets a database keep up with them. Replicas each run a writer on one
//! PostgreSQL: the conditional head moves, and the session locks taken in one order by every
//! path, keep their batches correct against each other (exactly one of two concurrent
//! refreshes of one token wins).
//!
//! A request whose token or session already has a refresh in the batch waits for the next
//! batch: its decision depends on what the first one writes.
//!
//! On SQLite the writer is a thread of its own, which runs the batches that only rotate on its
//! own connection (`direct.rs`) and the rest as above.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::decide::{Family, Successor};
use super::direct::Direct;
use super::plan::{distinct_tokens, grant, plain_outcomes, plan, rotations, Pending, Plan};
use super::sql::{self, Columns, Value, MAX_BATCH};
use super::{RefreshRequest, RotationPolicy};
use crate::clock::{Clock, Millis};
use crate::db::{Backend, Db, Tx};
use crate::secret::new_refresh_secret;
use crate::signals::Signal;
use crate::store::audit::Actor;
use crate::store::chains::{chain_links, chain_walk};
use crate::store::events::{self, Audit, EventKind, NewEvent, Severity};
use crate::store::outcome::{Outcome, Refusal};
use crate::store::revocation::revoke_and_record;
use crate::store::{Result, StoreError};

/// A batch smaller than this gives up the CPU up to `FILL_YIELDS` times before it starts, so
/// that request handlers sharing the cores can hand over the refreshes they are parsing: every
/// commit has a fixed cost, and fuller batches spread it thinner. With nothing else to run, a
/// yield returns at once.
const FILL_BELOW: usize = 32;
const FILL_YIELDS: u32 = 4;

/// How often a batch that failed for a reason worth retrying (a deadlock or serialization
/// failure on PostgreSQL, a busy database on SQLite) is run again before its refreshes are run
/// one by one.
const RETRIES: u32 = 3;

/// A handle to the rotation writer; the writer ends when the last handle drops.
#[derive(Clone)]
pub struct Rotator {
    tx: mpsc::Sender<Pending>,
}

impl Rotator {
    /// Starts the writer on the runtime this is called from. On SQLite this opens the writer's
    /// own connection to the database file: a file it cannot open fails here, not at the first
    /// refresh.
    pub fn spawn(db: Db, policy: RotationPolicy, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(8192);
        let (requeue, requeued) = mpsc::unbounded_channel();
        let intake = Arc::new(tokio::sync::Mutex::new(Intake {
            rx,
            requeued,
            queue: VecDeque::new(),
            backend: db.backend(),
        }));
        let writer = Writer {
            db: db.clone(),
            policy: Arc::new(policy),
            clock,
            intake,
            requeue,
            heads: Arc::default(),
        };
        match db.sqlite_path() {
            Some(path) => {
                let direct = Direct::open(path).map_err(std::io::Error::other)?;
                let runtime = tokio::runtime::Handle::current();
                std::thread::Builder::new()
                    .name("latchkey-rotator".into())
                    .spawn(move || runtime.block_on(writer.run(Some(direct))))?;
            }
            None => {
                for _ in 0..WRITERS_POSTGRES {
                    tokio::spawn(writer.clone().run(None));
                }
            }
        }
        Ok(Self { tx })
    }

    /// Rotates the presented token, answered once the transaction holding the rotation has
    /// committed.
    pub async fn rotate(&self, request: RefreshRequest) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            request,
            successor: new_refresh_secret(),
            reply,
        };
        let gone = || StoreError::Db(sqlx::Error::PoolClosed);
        self.tx.send(pending).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// How many batches run at once on PostgreSQL, where a batch spends most of its time waiting
/// on round trips and the commit's flush: while one waits, the next is gathered and written
/// (their sessions' locks order them where they share a family). SQLite has one writer: a
/// second batch would only wait for the first.
const WRITERS_POSTGRES: usize = 2;

/// Where writers take their batches from, one writer at a time: the refreshes handed over, and
/// those that wait from earlier batches (first in line). A writer that waits here holds the
/// intake, so the others hand their waiting refreshes back through `requeued`, never through
/// the lock.
struct Intake {
    rx: mpsc::Receiver<Pending>,
    requeued: mpsc::UnboundedReceiver<Pending>,
    queue: VecDeque<Pending>,
    /// How a writer gives way while it gathers a batch, and how many refreshes it takes.
    backend: Backend,
}

impl Intake {
    /// The next batch; `None` once every handle is gone and nothing waits.
    async fn next_batch(&mut self) -> Option<Vec<Pending>> {
        while let Ok(p) = self.requeued.try_recv() {
            self.queue.push_back(p);
        }
        if self.queue.is_empty() {
            let first = tokio::select! {
                biased;
                Some(p) = self.requeued.recv() => p,
                p = self.rx.recv() => p?,
            };
            self.queue.push_back(first);
        }
        let mut yields = 0;
        while self.queue.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(p) => self.queue.push_back(p),
                Err(mpsc::error::TryRecvError::Empty)
                    if self.queue.len() < FILL_BELOW && yields < FILL_YIELDS =>
                {
                    yields += 1;
                    match self.backend {
                        // A thread of its own: let the handlers' threads have the core.
                        Backend::Sqlite => std::thread::yield_now(),
                        // A task on the handlers' runtime: let the others run.
                        Backend::Postgres => tokio::task::yield_now().await,
                    }
                }
                Err(_) => break,
            }
        }
        let take = match self.backend {
            // SQLite's own connection runs a batch one row at a time, whatever its size.
            Backend::Sqlite => self.queue.len().min(MAX_BATCH),
            Backend::Postgres => batch_size(self.queue.len()),
        };
        Some(self.queue.drain(..take).collect())
    }
}

#[derive(Clone)]
struct Writer {
    db: Db,
    policy: Arc<RotationPolicy>,
    clock: Arc<dyn Clock>,
    intake: Arc<tokio::sync::Mutex<Intake>>,
    requeue: mpsc::UnboundedSender<Pending>,
    heads: Arc<Heads>,
}

/// PostgreSQL: the families this process's latest rotations left, each by its new head, the
/// token its client presents next; a batch of those needs no load, one round trip instead of
/// two. Taken out when used. An entry may be stale (another replica rotated or revoked the
/// session since), which a rotation decided from it cannot outlive: its head moves only if the
/// session is still at that head and not revoked (`sql::rotate`), and a rotation whose head did
/// not move is decided again from the database, as is a refusal decided from an entry. The rest
/// of a session's row (scope, expiry, key, rate window) changes only with its head's move or its
/// revocation, and head ids are never reused: an entry whose head has not moved is current.
#[derive(Default)]
struct Heads(std::sync::Mutex<Held>);

#[derive(Default)]
struct Held {
    /// Boxed: the table's slots stay small, the spare ones too.
    families: HashMap<i64, Box<Family>>,
    /// The heads in the order they were put, the oldest dropped first. A head taken out stays
    /// here until its turn; none is put twice.
    order: VecDeque<i64>,
}

impl Heads {
    /// How many of the latest heads are kept (about 800 bytes each, 13 MB in all): a family is
    /// found here if its client comes back within this many of the process's rotations. With
    /// five-minute access tokens that is every family up to about 50 rotations a second, and a
    /// share of them beyond; a client that refreshes in bursts is found at any rate.
    const MAX: usize = 1 << 14;

    /// Takes the families of `ids` held here; returns the ids of those that are not.
    fn take(&self, ids: Vec<i64>, into: &mut HashMap<i64, Family>) -> Vec<i64> {
        let mut held = self.0.lock().expect("heads lock");
        ids.into_iter()
            .filter(|id| match held.families.remove(id) {
                Some(f) => {
                    into.insert(*id, *f);
                    false
                }
                None => true,
            })
            .collect()
    }

    fn put(&self, families: Vec<Family>) {
        let mut held = self.0.lock().expect("heads lock");
        for f in families {
            held.order.push_back(f.token_id);
            held.families.insert(f.token_id, Box::new(f));
        }
        while held.order.len() > Self::MAX {
            if let Some(oldest) = held.order.pop_front() {
                held.families.remove(&oldest);
            }
        }
    }
}

impl Writer {
    /// Runs batches until every handle is gone; with `direct`, each first on that connection.
    async fn run(self, mut direct: Option<Direct>) {
        loop {
            let Some(batch) = self.intake.lock().await.next_batch().await else {
                return;
            };
            // A request abandoned (timed out, client gone) before its turn is not rotated: its
            // client would never learn the successor, and its retry would look like reuse.
            let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
            if batch.is_empty() {
                continue;
            }
            let now = self.clock.now_ms();
            let done = match direct.as_mut().map(|d| d.run(&self.policy, &batch, now)) {
                Some(Ok(Some(outcomes))) => Some(outcomes),
                Some(Ok(None)) | None => None,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, size = batch.len(), "direct rotation batch failed; running it through the pool");
                    None
                }
            };
            let deferred = match done {
                Some(outcomes) => answer(batch, outcomes),
                None => rotate_batch(&self.db, &self.policy, &self.heads, batch, now).await,
            };
            for p in deferred {
                // The intake outlives every writer: this cannot fail while one runs.
                let _ = self.requeue.send(p);
            }
        }
    }
}

/// How many of `waiting` refreshes the next batch takes on PostgreSQL: the largest of a few
/// sizes. Each size is a statement text of its own, prepared and cached per connection; with
/// every size from 1 to 64 the caches (100 statements by default) would keep evicting them.
/// What is left waits for the next batch, with what arrives meanwhile.
fn batch_size(waiting: usize) -> usize {
    const SIZES: [usize; 12] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, MAX_BATCH];
    SIZES
        .iter()
        .rev()
        .copied()
        .find(|&s| s <= waiting)
        .unwrap_or(1)
}

/// Runs one batch and answers its refreshes; returns those that wait for the next batch.
async fn rotate_batch(
    db: &Db,
    policy: &RotationPolicy,
    heads: &Heads,
    batch: Vec<Pending>,
    now: Millis,
) -> Vec<Pending> {
    let mut attempt = 0;
    let result = loop {
        match run_batch(db, policy, heads, &batch, now).await {
            Err(e) if attempt < RETRIES && transient(&e) => {
                tracing::debug!(error = %e, size = batch.len(), "rotation batch retried");
                attempt += 1;
            }
            result => break result,
        }
    };
    match result {
        Ok(outcomes) => answer(batch, outcomes),
        Err(e) if batch.len() > 1 => {
            // One refresh that cannot be written must not fail the others with it.
            tracing::warn!(error = %e, size = batch.len(), "rotation batch failed; running its refreshes one by one");
            let mut deferred = Vec::new();
            for p in batch {
                let outcome = run_batch(db, policy, heads, std::slice::from_ref(&p), now).await;
                match outcome {
                    Ok(outcomes) => deferred.extend(answer(vec![p], outcomes)),
                    Err(e) => {
                        let _ = p.reply.send(Err(e));
                    }
                }
            }
            deferred
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(clone_error(&e)));
            }
            Vec::new()
        }
    }
}

fn answer(batch: Vec<Pending>, outcomes: Vec<Option<Outcome>>) -> Vec<Pending> {
    let mut deferred = Vec::new();
    for (p, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            Some(outcome) => {
                let _ = p.reply.send(Ok(outcome));
            }
            None => deferred.push(p),
        }
    }
    deferred
}

fn transient(e: &StoreError) -> bool {
    let StoreError::Db(sqlx::Error::Database(db)) = e else {
        return false;
    };
    // PostgreSQL: serialization_failure, deadlock_detected. SQLite: SQLITE_BUSY (5),
    // SQLITE_LOCKED (6), with or without an extended code.
    matches!(
        db.code().as_deref(),
        Some("40001" | "40P01" | "5" | "6" | "517" | "262")
    )
}

fn clone_error(e: &StoreError) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(format!("rotation failed: {e}")))
}

/// Runs one batch: each refresh's outcome, or `None` where it waits.
async fn run_batch(
    db: &Db,
    policy: &RotationPolicy,
    heads: &Heads,
    batch: &[Pending],
    now: Millis,
) -> Result<Vec<Option<Outcome>>> {
    if db.backend() == Backend::Postgres {
        if let Some(outcomes) = run_unlocked(db, policy, heads, batch, now).await? {
            return Ok(outcomes);
        }
    }
    run_locked(db, policy, batch, now).await
}

/// PostgreSQL: runs a batch that only rotates and refuses in two statements and no
/// transaction, or returns `None` having written nothing. Most sessions have no other refresh
/// in flight; locks would cost a statement, and a transaction two more round trips.
///
/// The batch's families are read as of one statement, and each rotation's head moves only if
/// its session is still at the head and liveness it was decided on (`sql::rotate`, its own
/// commit). A rotation whose session moved on meanwhile writes nothing and waits for the next
/// batch, where it is decided again from what its session is then (a replay, a revocation). A
/// refusal writes nothing and stands as of the statement that read it, like any read. A batch
/// with more to write (an event, a revocation, a grace replay) is run under the locks instead.
async fn run_unlocked(
    db: &Db,
    policy: &RotationPolicy,
    heads: &Heads,
    batch: &[Pending],
    now: Millis,
) -> Result<Option<Vec<Option<Outcome>>>> {
    let mut conn = db.write().acquire().await?;
    let pg = Backend::Postgres;
    let mut families = HashMap::new();
    let missing = heads.take(distinct_tokens(batch), &mut families);
    let held: HashSet<i64> = families.keys().copied().collect();
    #[cfg(debug_assertions)]
    check_held(&mut conn, &families).await?;
    if !missing.is_empty() {
        families.extend(load(&mut conn, pg, &missing).await?);
    }
    let mut plans = plan(policy, batch, &families, now);
    // A held family is trusted only for a rotation, which its head's move checks. A refusal
    // (an expired token, another client) is decided again from the database, where the token
    // may have been rotated elsewhere since: reuse outranks the rest, and revokes the family.
    let doubted: Vec<i64> = batch
        .iter()
        .zip(&plans)
        .map(|(p, plan)| (p.request.token.id, plan))
        .filter(|(id, plan)| matches!(plan, Plan::Refuse(_)) && held.contains(id))
        .map(|(id, _)| id)
        .collect();
    if !doubted.is_empty() {
        families.extend(load(&mut conn, pg, &doubted).await?);
        plans = plan(policy, batch, &families, now);
    }
    if !plans.iter().all(Plan::is_plain) {
        return Ok(None);
    }
    let granted = rotations(batch, &plans, &families);
    let moved = write_successors(&mut conn, pg, &granted, now).await?;
    heads.put(
        granted
            .iter()
            .filter_map(|&(p, s, f)| {
                let head = *moved.get(&f.session_id)?;
                let hash = p.successor.1.clone();
                Some(f.rotated(s, head, hash, &p.request.origin, now))
            })
            .collect(),
    );
    Ok(Some(plain_outcomes(batch, plans, &families, &moved)))
}

/// Debug builds (the tests): a held family whose session is still at its head and live is
/// what a load of its token reads now.
#[cfg(debug_assertions)]
async fn check_held(conn: &mut AnyConnection, held: &HashMap<i64, Family>) -> Result<()> {
    let ids: Vec<i64> = held.keys().copied().collect();
    if ids.is_empty() {
        return Ok(());
    }
    for (id, stored) in load(conn, Backend::Postgres, &ids).await? {
        if stored.head == Some(id) && stored.revoked.is_none() {
            assert_eq!(Some(&stored), held.get(&id), "a held family is as stored");
        }
    }
    Ok(())
}

/// Runs a batch in one transaction under its sessions' locks, taken in session id order
/// before they are read (`sql::lock`; on SQLite the write transaction holds the database).
async fn run_locked(
    db: &Db,
    policy: &RotationPolicy,
    batch: &[Pending],
    now: Millis,
) -> Result<Vec<Option<Outcome>>> {
    let mut tx = db.begin_write().await?;
    let backend = tx.backend();
    let ids = distinct_tokens(batch);
    if let Some(lock) = sql::lock(backend, ids.len()) {
        bind(sqlx::query(lock), sql::ids(&ids))
            .fetch_all(&mut *tx)
            .await?;
    }
    let families = load(&mut tx, backend, &ids).await?;
    let plans = plan(policy, batch, &families, now);
    let granted = rotations(batch, &plans, &families);
    let heads = write_successors(&mut tx, backend, &granted, now).await?;
    if heads.len() != granted.len() {
        // The sessions were read under their locks: this cannot happen unless something
        // changed them without it. Nothing of the batch may stay.
        return Err(StoreError::Conflict(
            "a session moved under its lock in a rotation batch".into(),
        ));
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for (p, plan) in batch.iter().zip(plans) {
        let f = families.get(&p.request.token.id);
        outcomes.push(record(&mut tx, policy, p, plan, f, &heads, now).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The presented tokens' families, by token id (`sql::load`).
async fn load(
    conn: &mut AnyConnection,
    backend: Backend,
    ids: &[i64],
) -> Result<HashMap<i64, Family>> {
    let rows = bind(sqlx::query(sql::load(backend, ids.len())), sql::ids(ids))
        .fetch_all(&mut *conn)
        .await?;
    let families = rows
        .iter()
        .map(|row| sql::family(row).map(|f| (f.token_id, f)))
        .collect::<std::result::Result<_, _>>()?;
    Ok(families)
}

/// Writes the successors of a batch's rotations and moves their sessions' heads to them, each
/// only where its session is still at the head and liveness it was decided on; the written
/// successors' ids by session. One statement on PostgreSQL (`sql::rotate`); on SQLite, whose
/// write transaction holds the database, one to insert and one to advance.
async fn write_successors(
    conn: &mut AnyConnection,
    backend: Backend,
    granted: &[(&Pending, &Successor, &Family)],
    now: Millis,
) -> Result<HashMap<String, i64>> {
    if granted.is_empty() {
        return Ok(HashMap::new());
    }
    let n = granted.len();
    let heads = |rows: Vec<AnyRow>| {
        rows.iter()
            .map(|row| Ok((row.try_get(1)?, row.try_get(0)?)))
            .collect::<std::result::Result<HashMap<String, i64>, sqlx::Error>>()
    };
    match backend {
        Backend::Postgres => {
            let rotate = bind(sqlx::query(sql::rotate(n)), sql::rotate_rows(granted, now));
            Ok(heads(rotate.fetch_all(&mut *conn).await?)?)
        }
        Backend::Sqlite => {
            let insert = bind(
                sqlx::query(sql::insert(backend, n)),
                sql::insert_rows(granted, now),
            );
            let written = heads(insert.fetch_all(&mut *conn).await?)?;
            let rows = sql::advance_rows(granted, &written, now)
                .ok_or_else(|| StoreError::Conflict("a successor was not written".into()))?;
            let advance = bind(sqlx::query(sql::advance(backend, n)), rows);
            let moved = advance.execute(&mut *conn).await?.rows_affected();
            // A head that did not move keeps no successor: the caller rolls back.
            Ok(if moved == n as u64 {
                written
            } else {
                HashMap::new()
            })
        }
    }
}

/// Records what one refresh of the batch did (events, revocations, grace counters) and makes
/// its outcome; `None` if it waits for the next batch.
async fn record(
    tx: &mut Tx,
    policy: &RotationPolicy,
    p: &Pending,
    plan: Plan,
    f: Option<&Family>,
    heads: &HashMap<String, i64>,
    now: Millis,
) -> Result<Option<Outcome>> {
    let r = &p.request;
    let origin = &r.origin;
    let outcome = match (plan, f) {
        (Plan::Deferred, _) => return Ok(None),
        (Plan::Refuse(refusal), _) => Err(refusal),
        (
            Plan::Grant {
                successor,
                replayed,
                signals,
            },
            Some(f),
        ) => {
            if let Some(first_used_at) = replayed {
                sqlx::query(sql::COUNT_REPLAY)
                    .bind(f.token_id)
                    .bind(first_used_at)
                    .execute(&mut **tx)
                    .await?;
                system_event(
                    tx,
                    f,
                    origin,
                    EventKind::GraceReplay,
                    Severity::Info,
                    json!({ "replayed_generation": f.generation, "first_used_at": first_used_at }),
                    now,
                )
                .await?;
            }
            record_signals(tx, f, origin, &signals, now).await?;
            let id = heads
                .get(&f.session_id)
                .copied()
                .ok_or_else(|| StoreError::Conflict("a successor was not written".into()))?;
            Ok(grant(p, f, successor, id))
        }
        (Plan::Theft { signals }, Some(f)) => {
            record_signals(tx, f, origin, &signals, now).await?;
            let kind = signals
                .iter()
                .find(|s| s.severity == Severity::High)
                .map_or("signal", |s| s.kind.as_str());
            revoke_and_record(
                tx,
                &f.session_id,
                Actor::System,
                &format!("auto_revoked_{kind}"),
                origin,
                now,
                Audit::As(Actor::System),
                None,
            )
            .await?;
            Err(Refusal::SuspectedTheft)
        }
        (Plan::RevokedTokenUsed, Some(f)) => {
            // Someone still holds a token of a dead family: worth recording, nothing to revoke.
            system_event(
                tx,
                f,
                origin,
                EventKind::RevokedTokenUsed,
                Severity::Medium,
                json!({
                    "presented_generation": f.generation,
                    "revoke_reason": f.revoked.as_ref().and_then(|r| r.reason.as_deref()),
                }),
                now,
            )
            .await?;
            Err(Refusal::Revoked)
        }
        (Plan::Reuse, Some(f)) => {
            revoke_for_reuse(tx, f, r, now).await?;
            Err(Refusal::ReuseDetected)
        }
        (Plan::KeyMismatch, Some(f)) => {
            // Holding someone's bound token without their key is evidence of theft.
            let mismatch = NewEvent {
                kind: EventKind::KeyMismatch,
                severity: Severity::High,
                user_id: Some(&f.user_id),
                session_id: Some(&f.session_id),
                origin,
                details: json!({
                    "presented_generation": f.generation,
                    "bound_jkt": f.dpop_jkt,
                    "presented_jkt": r.jkt,
                    "presented_by_client": r.client_id,
                    "session_revoked": false,
                }),
                audit: Audit::As(Actor::System),
            };
            if policy.revoke_on_key_mismatch {
                revoke_and_record(
                    tx,
                    &f.session_id,
                    Actor::System,
                    "key_mismatch",
                    origin,
                    now,
                    Audit::Covered,
                    Some(mismatch),
                )
                .await?;
            } else {
                events::record(tx, mismatch, now).await?;
            }
            Err(Refusal::KeyMismatch)
        }
        // Every plan but a refusal comes from a loaded family.
        (_, None) => Err(Refusal::Unknown),
    };
    Ok(Some(outcome))
}

/// RFC 9700 §4.14.2: a replayed refresh token revokes its whole family. This is the one place
/// that does it. The evidence is when and from where the token was used first: its successor's
/// issue.
async fn revoke_for_reuse(tx: &mut Tx, f: &Family, r: &RefreshRequest, now: Millis) -> Result<()> {
    // Generations fall by at least one per step back from the head, so this many steps reach
    // the replayed token.
    let steps = (f.session_generation - f.generation + 1).max(1);
    let used = sqlx::query(&chain_walk("WHERE t.id = $3"))
        .bind(&f.session_id)
        .bind(steps)
        .bind(f.token_id)
        .fetch_optional(&mut **tx)
        .await?;
    let used = chain_links(used.as_slice())?.pop();
    let used = used.as_ref();
    let detected = NewEvent {
        kind: EventKind::ReuseDetected,
        severity: Severity::High,
        user_id: Some(&f.user_id),
        session_id: Some(&f.session_id),
        origin: &r.origin,
        details: json!({
            "replayed_generation": f.generation,
            "current_generation": f.session_generation,
            "retired_at": used.and_then(|u| u.used_at),
            "retired_by_ip": used.and_then(|u| u.used_ip.as_deref()),
            "retired_by_user_agent": used.and_then(|u| u.used_user_agent.as_deref()),
            "presented_by_client": r.client_id,
        }),
        audit: Audit::As(Actor::System),
    };
    revoke_and_record(
        tx,
        &f.session_id,
        Actor::System,
        "reuse_detected",
        &r.origin,
        now,
        Audit::Covered,
        Some(detected),
    )
    .await?;
    Ok(())
}

async fn record_signals(
    tx: &mut Tx,
    f: &Family,
    origin: &crate::store::Origin,
    found: &[Signal],
    now: Millis,
) -> Result<()> {
    for signal in found {
        system_event(
            tx,
            f,
            origin,
            signal.kind,
            signal.severity,
            signal.details.clone(),
            now,
        )
        .await?;
    }
    Ok(())
}

async fn system_event(
    tx: &mut Tx,
    f: &Family,
    origin: &crate::store::Origin,
    kind: EventKind,
    severity: Severity,
    details: serde_json::Value,
    now: Millis,
) -> Result<()> {
    events::record(
        tx,
        NewEvent {
            kind,
            severity,
            user_id: Some(&f.user_id),
            session_id: Some(&f.session_id),
            origin,
            details,
            audit: Audit::As(Actor::System),
        },
        now,
    )
    .await
}

impl Columns for AnyRow {
    type Error = sqlx::Error;
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }
    fn maybe_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }
    fn maybe_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>, sqlx::Error> {
        self.try_get(i)
    }
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: impl IntoIterator<Item = Value<'q>>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match value {
            Value::Int(v) => query.bind(v),
            Value::MaybeInt(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::MaybeText(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
        };
    }
    query
}

/// Inserts a new family's first refresh token (generation 1, no parent) with the rotation's
/// statement; returns its id.
pub(crate) async fn insert_first_token(
    tx: &mut Tx,
    session_id: &str,
    secret_hash: &[u8],
    expires_at: Millis,
    origin: &crate::store::Origin,
    now: Millis,
) -> Result<i64> {
    let row = sql::token_row(secret_hash, session_id, 1, None, expires_at, origin, now);
    let backend = tx.backend();
    let id = bind(sqlx::query(sql::insert(backend, 1)), row)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::PriorUse;

    fn family(head: i64) -> Family {
        Family {
            token_id: head,
            secret_hash: vec![7; 32],
            session_id: "01a23d9e-c151-77e1-8c08-23d194e99aa1".into(),
            generation: 2,
            issued: PriorUse {
                at: 1_796_330_143_772,
                ip: Some("203.0.113.9".into()),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Latchkey/0.1.0".into()),
            },
            token_expires_at: 1_797_539_743_772,
            first_used_at: None,
            grace_replays: 0,
            user_id: "01a23d9e-c07a-77e1-9a68-e1ba2586ec8a".into(),
            client_id: "latchkey-desktop".into(),
            scope: "openid profile email offline_access".into(),
            auth_time: 1_796_330_143_772,
            session_expires_at: 1_798_922_143_772,
            revoked: None,
            head: Some(head),
            session_generation: 2,
            dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
            window_start: 1_796_330_143_772,
            window_count: 1,
            head_parent: Some(head - 1),
            head_issued_at: Some(1_796_330_143_772),
        }
    }

    #[test]
    fn heads_are_taken_once_and_the_oldest_dropped_first() {
        let heads = Heads::default();
        heads.put((1..=Heads::MAX as i64 + 2).map(family).collect());
        let mut found = HashMap::new();
        let last = Heads::MAX as i64 + 2;
        assert_eq!(heads.take(vec![1, 2, 3, last], &mut found), vec![1, 2]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[&last], family(last));
        assert_eq!(
            heads.take(vec![3, last], &mut found),
            vec![3, last],
            "taken once"
        );
        // A put drops the oldest head put, taken or not: 3, taken already, so 4 stays.
        heads.put(vec![family(last + 1)]);
        let none: Vec<i64> = Vec::new();
        assert_eq!(heads.take(vec![4, last + 1], &mut HashMap::new()), none);
        let held = heads.0.lock().unwrap();
        assert_eq!(held.order.len(), Heads::MAX);
        assert_eq!(held.families.len(), Heads::MAX - 3);
    }

    #[test]
    fn batches_take_one_of_a_few_sizes() {
        assert_eq!(batch_size(1), 1);
        assert_eq!(batch_size(5), 4);
        assert_eq!(batch_size(37), 32);
        assert_eq!(batch_size(1000), MAX_BATCH);
    }
}
