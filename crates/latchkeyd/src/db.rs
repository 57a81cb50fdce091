//! The database: one schema on SQLite (embedded default) and PostgreSQL (scale-out), reached
//! through sqlx's `Any` driver so every query is written once.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

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
}

/// A write transaction, carrying what its writes need beyond the connection: the key that
/// chains audit records. Dereferences to the connection, like sqlx's own transaction.
pub struct Tx {
    inner: Transaction<'static, Any>,
    chain_key: Option<ChainKey>,
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
        self.inner.commit().await
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
                })
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url).map_err(connect_err)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Ok(Self {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    sqlite_path: None,
                    chain_key: None,
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
        })
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
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mut query = query.to_string();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{query}"))
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
