//! The database: one schema on SQLite (embedded default) and PostgreSQL (scale-out), reached
//! through sqlx's `Any` driver so every query is written once.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};
use tokio::sync::broadcast;

use crate::store::audit::ChainKey;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connection pools. SQLite allows one writer at a time, so writes go through a single
/// connection (queued fairly by the pool, no `SQLITE_BUSY` spinning) and reads through several;
/// on PostgreSQL both are the same pool and row locks order concurrent writers.
#[derive(Clone, Debug)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    sqlite_path: Option<std::path::PathBuf>,
    /// Keys the audit chain; without it nothing can be appended to the audit log.
    chain_key: Option<ChainKey>,
    revoked: Arc<RevokedSessions>,
    revocations: broadcast::Sender<SessionRevoked>,
}

/// A session was revoked, by whatever and whoever: published once the revoking transaction
/// has committed, to whatever in this process must react at once (the live event streams;
/// the tokens' resource servers in time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRevoked {
    pub session_id: String,
}

/// Sessions known to be revoked. Revocation is final, so this can never be wrong; live sessions
/// are always checked in the database (another replica may revoke them). Every revocation
/// passes through a [`Tx`], which adds its sessions here once it has committed.
#[derive(Debug, Default)]
struct RevokedSessions(RwLock<HashSet<String>>);

impl RevokedSessions {
    fn contains(&self, id: &str) -> bool {
        self.0.read().expect("cache lock").contains(id)
    }

    fn insert(&self, ids: impl IntoIterator<Item = String>) {
        let mut set = self.0.write().expect("cache lock");
        for id in ids {
            // Bounded: past this size the set starts over (the database stays the authority).
            if set.len() >= 100_000 {
                set.clear();
            }
            set.insert(id);
        }
    }
}

/// A write transaction, carrying what its writes need beyond the connection: the key that
/// chains audit records. Dereferences to the connection, like sqlx's own transaction.
pub struct Tx {
    inner: Transaction<'static, Any>,
    chain_key: Option<ChainKey>,
    backend: Backend,
    /// Sessions this transaction revoked, for the cache and the subscribers once it commits.
    revoked: Vec<String>,
    cache: Arc<RevokedSessions>,
    revocations: broadcast::Sender<SessionRevoked>,
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await?;
        for session_id in &self.revoked {
            // No subscriber is no error: nothing in this process is waiting.
            let _ = self.revocations.send(SessionRevoked {
                session_id: session_id.clone(),
            });
        }
        self.cache.insert(self.revoked);
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Notes that this transaction revoked the session (see `store::revocation`).
    pub(crate) fn revoked(&mut self, session_id: &str) {
        self.revoked.push(session_id.to_string());
    }

    pub fn chain_key(&self) -> Option<&ChainKey> {
        self.chain_key.as_ref()
    }
}

impl Db {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact_url(url)));
        };
        let connect_err = |source| DbError::Connect {
            url: redact_url(url),
            source,
        };
        match backend {
            Backend::Sqlite => {
                let url = sqlite_url_with_create(url)?;
                let path = path_of_sqlite_url(&url);
                let options = AnyConnectOptions::from_str(&url).map_err(connect_err)?;
                let pool = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(10))
                        // A local file needs no liveness ping; it would cost a hand-off per use.
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL lets readers proceed while the writer commits; NORMAL
                                // sync keeps every commit across a crash of the process.
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                        .connect_with(options.clone())
                };
                let write = pool(1).await.map_err(connect_err)?;
                let read = pool(4).await.map_err(connect_err)?;
                Ok(Self {
                    read,
                    write,
                    backend,
                    sqlite_path: Some(path),
                    chain_key: None,
                    revoked: Arc::default(),
                    revocations: broadcast::channel(1024).0,
                })
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(&postgres_url_with_cache(url))
                    .map_err(connect_err)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    // A connection idle for a while is pinged before use (the server may have
                    // restarted or dropped it); one in constant use is not: a ping is a round
                    // trip, and under load the rotation writer would pay one per batch.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > Duration::from_secs(1) {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Ok(Self {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    sqlite_path: None,
                    chain_key: None,
                    revoked: Arc::default(),
                    revocations: broadcast::channel(1024).0,
                })
            }
        }
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file, on SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    pub fn read(&self) -> &AnyPool {
        &self.read
    }

    pub fn write(&self) -> &AnyPool {
        &self.write
    }

    /// A write transaction. On SQLite it takes the write lock at its start (`BEGIN IMMEDIATE`):
    /// the rotator thread is a second writer on the file, and a deferred transaction that read
    /// before it wrote would fail with `SQLITE_BUSY` if the rotator committed in between, with
    /// no busy wait to cover it.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let inner = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        };
        Ok(Tx {
            inner,
            chain_key: self.chain_key.clone(),
            backend: self.backend,
            revoked: Vec::new(),
            cache: self.revoked.clone(),
            revocations: self.revocations.clone(),
        })
    }

    /// Is the session live? Cheap for sessions known to be revoked, correct for all: an access
    /// token is worth nothing once its session is revoked, at whichever replica.
    pub async fn session_live(&self, session_id: &str) -> Result<bool, sqlx::Error> {
        if self.revoked.contains(session_id) {
            return Ok(false);
        }
        let row = sqlx::query("SELECT revoked_at FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let live = row.try_get::<Option<i64>, _>("revoked_at")?.is_none();
        if !live {
            // Only sessions that exist: made-up ids must not fill the cache.
            self.revoked.insert([session_id.to_string()]);
        }
        Ok(live)
    }

    /// Every session revocation this process commits, from now on.
    pub fn revocations(&self) -> broadcast::Receiver<SessionRevoked> {
        self.revocations.subscribe()
    }

    /// The same database, with the key that chains audit records (derived from the master
    /// key, which the database never holds).
    pub fn with_chain_key(mut self, key: ChainKey) -> Self {
        self.chain_key = Some(key);
        self
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// The rotation writer prepares a statement per batch size (`store::rotation::sql`); with the
/// rest of latchkeyd's statements they outgrow the driver's default cache of 100 per
/// connection, and every eviction would cost a prepare round trip. A capacity in the URL wins.
fn postgres_url_with_cache(url: &str) -> String {
    if url.contains("statement-cache-capacity=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}statement-cache-capacity=500")
}

/// `sqlite://relative/or/absolute.db` → a URL that creates the file, after creating its folder.
fn sqlite_url_with_create(url: &str) -> Result<String, DbError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(DbError::UnsupportedUrl(
            "sqlite in memory (latchkeyd needs a file)".into(),
        ));
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| DbError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    private_file(Path::new(path))?;
    let mut query = query.to_string();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{query}"))
}

/// The database holds every session and hashed token: it is created readable by its owner
/// alone (SQLite gives its `-wal` and `-shm` files the database file's mode). A file from an
/// older version that anyone on the machine could read loses that.
fn private_file(path: &Path) -> Result<(), DbError> {
    let failed = |source| DbError::CreateDir {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let file = std::path::PathBuf::from(file);
                use std::os::unix::fs::PermissionsExt;
                let Ok(meta) = std::fs::metadata(&file) else {
                    continue;
                };
                let mode = meta.permissions().mode();
                if mode & 0o007 != 0 {
                    tracing::warn!(
                        file = %file.display(),
                        "the database was readable by every user of this machine; making it private"
                    );
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & !0o007))
                        .map_err(failed)?;
                }
            }
            Ok(())
        }
        Err(e) => Err(failed(e)),
    }
}

fn path_of_sqlite_url(url: &str) -> std::path::PathBuf {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    std::path::PathBuf::from(rest.split_once('?').map_or(rest, |(p, _)| p))
}

/// Hides a password in a database URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/latchkey"),
            "postgres://app:***@db:5432/latchkey"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("lk-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let file = root.join("data/latchkey/latchkey.db");
        let db = Db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("data")), 0o700);
        assert_eq!(mode(&root.join("data/latchkey")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&root.join("data/latchkey/latchkey.db-wal")), 0o600);
        db.close().await;
        // A database an older version left readable by everyone is made private.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let db = Db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert_eq!(mode(&file), 0o640);
        db.close().await;
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sqlite_urls_gain_create_mode() {
        let dir = std::env::temp_dir().join(format!("lk-db-{}", std::process::id()));
        let url = format!("sqlite://{}/x.db", dir.display());
        assert_eq!(
            sqlite_url_with_create(&url).unwrap(),
            format!("sqlite://{}/x.db?mode=rwc", dir.display())
        );
        assert!(dir.is_dir());
    }
}
