//! The running server: shared state, the listener, background upkeep and graceful shutdown.

use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{secs, Clock};
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::http::api::stream::EventHub;
use crate::keys::KeyRing;
use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::store::audit::ChainKey;
use crate::store::{self, clients::Client};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub issuer: String,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyRing,
    /// DPoP server nonces (stateless; shared by replicas through the master key).
    pub nonces: crate::dpop::Nonces,
    /// Seals push receivers' Authorization headers (`pusher`); derived from the master key.
    pub push_key: crate::crypto::MasterKey,
    pub metrics: Metrics,
    pub discovery: String,
    /// Every refresh is decided and written by this one writer (`store::rotation`).
    pub rotator: store::rotation::Rotator,
    /// Fans security events out to the live streams of the account API.
    pub events: EventHub,
    /// Turns true when the server starts shutting down (ends the live streams).
    pub shutdown: watch::Sender<bool>,
    /// Per-address limits checked before any database work (`/authorize`, failed token
    /// requests).
    pub limits: RateLimits,
    /// Password checks (argon2id, 19 MiB each) running at once; a burst waits its turn
    /// instead of exhausting memory.
    pub password_checks: tokio::sync::Semaphore,
    clients: ttl_cache::Cache<Arc<Client>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A session's idle lifetime, in milliseconds.
    pub fn idle(&self) -> i64 {
        secs(self.settings.tokens.family_idle_secs)
    }

    /// Is the session live? See `Db::session_live`.
    pub async fn session_live(&self, session_id: &str) -> Result<bool, store::StoreError> {
        Ok(self.db.session_live(session_id).await?)
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// Clients change rarely (through the CLI): a few seconds of caching saves a query per grant.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, store::StoreError> {
        if let Some(hit) = self.clients.get(client_id) {
            return Ok(hit);
        }
        self.client_from_db(client_id).await
    }

    /// The client as stored now, past the cache: a secret that does not match the cached
    /// registration may belong to one made since (removed and added again).
    pub async fn client_from_db(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, store::StoreError> {
        let found = store::clients::find(&self.db, client_id)
            .await?
            .map(Arc::new);
        // Only hits are cached: random client ids must not grow the cache.
        if found.is_some() {
            self.clients.put(client_id, found.clone());
        }
        Ok(found)
    }
}

pub struct RateLimits {
    pub authorize: Option<Limiter>,
    pub token_failures: Option<Limiter>,
}

/// A tiny time-bounded cache; entries older than the TTL are read as misses.
mod ttl_cache {
    use std::collections::HashMap;
    use std::sync::RwLock;
    use std::time::{Duration, Instant};

    pub struct Cache<T> {
        ttl: Duration,
        entries: RwLock<HashMap<String, (Instant, Option<T>)>>,
    }

    impl<T: Clone> Cache<T> {
        pub fn new(ttl: Duration) -> Self {
            Self {
                ttl,
                entries: RwLock::new(HashMap::new()),
            }
        }

        pub fn get(&self, key: &str) -> Option<Option<T>> {
            let entries = self.entries.read().expect("cache lock");
            entries
                .get(key)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, v)| v.clone())
        }

        pub fn put(&self, key: &str, value: Option<T>) {
            let mut entries = self.entries.write().expect("cache lock");
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            }
            entries.insert(key.to_string(), (Instant::now(), value));
        }
    }
}

/// The master key: `LATCHKEY_MASTER_KEY` (base64) if set, else the key file.
pub fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    match std::env::var("LATCHKEY_MASTER_KEY") {
        Ok(value) if !value.trim().is_empty() => {
            MasterKey::from_base64(&value).context("LATCHKEY_MASTER_KEY is not usable")
        }
        _ => Ok(MasterKey::load_or_create(&settings.master_key_path())?),
    }
}

/// Opens and migrates the database named by the settings.
pub async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    Ok(db)
}

/// Opens the database with the master key loaded, for whatever writes the audit log.
pub async fn open_audited_db(settings: &Settings) -> anyhow::Result<(Db, MasterKey)> {
    let master = master_key(settings)?;
    let db = open_db(settings)
        .await?
        .with_chain_key(ChainKey::derive(&master));
    Ok((db, master))
}

pub struct Server {
    state: AppState,
    listener: TcpListener,
    /// `/metrics`, on an address of its own (`metrics_listen`), if one is configured.
    metrics: Option<TcpListener>,
}

impl Server {
    /// Validates the settings, opens the database, loads keys and binds the listener; every
    /// failure here is a clear startup error, not a panic.
    pub async fn bind(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        settings.validate()?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let metrics = match settings.metrics_listen {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} for metrics"))?,
            ),
            None => None,
        };
        let (db, master) = open_audited_db(&settings).await?;
        let nonces = crate::dpop::Nonces::new(&master, settings.dpop.nonce_lifetime_secs);
        let push_key = master.subkey("latchkey ssf push authorization v1");
        let now = clock.now_ms();
        store::clients::ensure_builtin(&db, now).await?;
        let t = &settings.tokens;
        // A retired key stays published as long as any token it signed can still be presented.
        let publish = secs(t.access_token_ttl_secs.max(t.id_token_ttl_secs) + 300);
        let keys = KeyRing::load(db.clone(), master, t.signing_alg, publish, now).await?;
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string();
        if issuer.starts_with("http://") && !addr.ip().is_loopback() {
            tracing::warn!(
                issuer = %issuer,
                "latchkeyd serves plain http beyond this machine: fine for trying it out, never for \
                 real use (passwords and tokens would cross the network in clear); put a TLS \
                 reverse proxy in front and set the issuer to its https URL"
            );
        }
        if issuer.starts_with("https://") && !settings.trust_forwarded_for {
            // Behind a TLS proxy every request comes from the proxy's address: the per-address
            // limits and sign-in throttling would then treat all users as one.
            tracing::warn!(
                issuer = %issuer,
                "the issuer is https but trust_forwarded_for is off: if a reverse proxy terminates \
                 TLS in front of latchkeyd, every client has the proxy's address and rate limits \
                 apply to everyone at once; set trust_forwarded_for = true (LATCHKEY_TRUST_FORWARDED_FOR) \
                 when that proxy sets X-Forwarded-For and nothing else can reach latchkeyd"
            );
        }
        let discovery = crate::http::discovery_document(&issuer);
        let rotator = store::rotation::Rotator::spawn(
            db.clone(),
            store::rotation::RotationPolicy {
                tokens: settings.tokens.clone(),
                signals: settings.signals.clone(),
                revoke_on_key_mismatch: settings.dpop.revoke_on_key_mismatch,
            },
            clock.clone(),
        )
        .context("cannot start the rotation writer")?;
        let limits = RateLimits {
            authorize: Limiter::new(&settings.limits.authorize),
            token_failures: Limiter::new(&settings.limits.token_failures),
        };
        let password_checks =
            tokio::sync::Semaphore::new(match settings.signin.max_concurrent_password_checks {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            });
        let state = AppState(Arc::new(Inner {
            settings,
            issuer,
            db,
            clock,
            keys,
            nonces,
            push_key,
            metrics: Metrics::default(),
            discovery,
            rotator,
            events: EventHub::default(),
            shutdown: watch::channel(false).0,
            limits,
            password_checks,
            clients: ttl_cache::Cache::new(Duration::from_secs(5)),
        }));
        Ok(Self {
            state,
            listener,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let upkeep = tokio::spawn(upkeep(state.clone()));
        let pusher = tokio::spawn(crate::pusher::run(state.clone()));
        let checkpoints = tokio::spawn(checkpoints(state.clone()));
        let hub = tokio::spawn(
            state
                .events
                .clone()
                .run(state.clone(), state.shutdown.subscribe()),
        );
        let app = crate::http::router(state.clone());
        let metrics = self.metrics.map(|listener| {
            let mut stop = state.shutdown.subscribe();
            let app = crate::http::metrics_router(state.clone());
            tokio::spawn(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let stopping = state.clone();
        let shutdown = async move {
            shutdown.await;
            // Live event streams would otherwise hold graceful shutdown open forever.
            stopping.shutdown.send_replace(true);
        };
        // Answers go out at once, not held back for coalescing (Nagle).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server stopped")?;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        upkeep.abort();
        pusher.abort();
        hub.abort();
        checkpoints.abort();
        // The log as it stands at shutdown, anchored outside the database.
        checkpoint(&state).await;
        state.db.close().await;
        Ok(())
    }
}

/// Takes a signed checkpoint of the audit log: into the log, and the checkpoint file if one
/// is configured. The number of records it covers, if it was taken.
async fn checkpoint(state: &AppState) -> Option<i64> {
    let taken = crate::checkpoint::take(&state.db, &state.keys, &state.issuer, state.now()).await;
    let cp = match taken {
        Ok(cp) => cp,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take an audit checkpoint");
            return None;
        }
    };
    tracing::info!(
        records = cp.records,
        head = %cp.head,
        checkpoint = %cp.checkpoint,
        "audit checkpoint"
    );
    if let Some(path) = &state.settings.audit.checkpoint_file {
        if let Err(e) = crate::checkpoint::append(path, &cp) {
            tracing::error!(error = %e, "cannot write the audit checkpoint file");
            return None;
        }
    }
    Some(cp.records)
}

/// Checkpoints the audit log every `checkpoint_interval_secs` while it grows.
async fn checkpoints(state: AppState) {
    let every = state.settings.audit.checkpoint_interval_secs.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    let mut last: Option<i64> = None;
    loop {
        tick.tick().await;
        let head = sqlx::query_scalar::<_, i64>("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(state.db.read())
            .await;
        match head {
            Ok(records) if Some(records) != last => {
                if let Some(taken) = checkpoint(&state).await {
                    last = Some(taken);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the audit log's head"),
        }
    }
}

/// Reloads signing keys (rotation by another process or replica) and prunes dead rows.
async fn upkeep(state: AppState) {
    let every = state.settings.upkeep_interval_secs.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = state.now();
        if let Err(e) = state.keys.reload(now).await {
            tracing::warn!(error = %e, "cannot reload signing keys; keeping the current ones");
        }
        let window = secs(state.settings.signin.failure_window_secs);
        if let Err(e) = store::prune::prune(&state.db, now, window).await {
            tracing::warn!(error = %e, "cannot prune expired records");
        }
        if let Err(e) = store::throttle::close_reports(&state.db, window, now).await {
            tracing::warn!(error = %e, "cannot close the throttled sign-in reports");
        }
        for limiter in [&state.limits.authorize, &state.limits.token_failures]
            .into_iter()
            .flatten()
        {
            limiter.prune(now);
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
