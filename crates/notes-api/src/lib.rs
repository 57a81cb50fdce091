//! notes-api: each user's notes, behind [`latchkey_guard`]. A note belongs to the person whose
//! access token wrote it (`sub`); a token whose session was revoked in Latchkey is refused at
//! once, though it has not expired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_guard::{Guard, Principal};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;

#[derive(Clone)]
pub struct AppState {
    pub guard: Guard,
    pub db: Notes,
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Guard {
        state.guard.clone()
    }
}

/// The notes database (SQLite, WAL), owned by this process while it runs.
///
/// A read is one indexed lookup of a few microseconds, run on the thread that serves the
/// request: handing it to a thread of its own and back cost far more than the read
/// (docs/BENCHMARKS.md). WAL readers never wait for the writer, so a read does not block
/// behind a write. A write waits for its commit to reach the disk, so it runs on tokio's
/// blocking pool.
#[derive(Clone)]
pub struct Notes {
    inner: Arc<Store>,
}

struct Store {
    path: PathBuf,
    /// Connections for reads. A read holds one without awaiting anything, so there are never
    /// more than the threads serving requests.
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Connection>,
}

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite's Unix VFS that holds the database file's lock for as long as the process has it
/// open and keeps the WAL index in the process's memory: a read then makes no system call for
/// file locks. Another process cannot open the database meanwhile (it gets "database is
/// locked"): one notes-api per file.
const VFS: &str = "unix-excl";

impl Notes {
    /// Opens (creating if need be) the notes database at `path`.
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), VFS)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; \
             CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, \
             text TEXT NOT NULL, created_at INTEGER NOT NULL); \
             CREATE INDEX IF NOT EXISTS notes_owner ON notes (owner, id);",
        )?;
        Ok(Self {
            inner: Arc::new(Store {
                path,
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(writer),
            }),
        })
    }

    /// `owner`'s notes, oldest first.
    pub fn of(&self, owner: &str) -> rusqlite::Result<Vec<Note>> {
        let store = &self.inner;
        let taken = store
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match taken {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags_and_vfs(
                    &store.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    VFS,
                )?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn
            }
        };
        let notes = read(&conn, owner);
        store
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        notes
    }

    /// Keeps a note for `owner`; the note as kept.
    pub async fn add(&self, owner: &str, text: &str, created_at: i64) -> rusqlite::Result<Note> {
        let store = self.inner.clone();
        let (owner, text) = (owner.to_string(), text.to_string());
        tokio::task::spawn_blocking(move || {
            let conn = store.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let id = conn
                .prepare_cached(
                    "INSERT INTO notes (owner, text, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                )?
                .query_row((&owner, &text, created_at), |row| row.get(0))?;
            Ok(Note {
                id,
                text,
                created_at,
            })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

fn read(conn: &Connection, owner: &str) -> rusqlite::Result<Vec<Note>> {
    conn.prepare_cached("SELECT id, text, created_at FROM notes WHERE owner = ?1 ORDER BY id")?
        .query_map([owner], |row| {
            Ok(Note {
                id: row.get(0)?,
                text: row.get(1)?,
                created_at: row.get(2)?,
            })
        })?
        .collect()
}

/// The notes routes, `/healthz`, and the guard's push receiver when it is pushed to.
pub fn router(state: AppState) -> Router {
    let push = state.guard.push_receiver();
    Router::new()
        .route("/notes", get(list).post(add))
        .route("/healthz", get(health))
        .merge(push)
        .with_state(state)
}

#[derive(Serialize)]
pub struct Note {
    pub id: i64,
    pub text: String,
    pub created_at: i64,
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

fn internal(e: rusqlite::Error) -> Response {
    tracing::error!(error = %e, "notes database error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the notes could not be read or written",
    )
}

/// Notes are a person's: a service account's token (no session) has no one to keep them for.
fn owner(p: &Principal) -> Option<&str> {
    p.session_id.as_ref().map(|_| p.subject.as_str())
}

fn not_a_person() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "notes are kept for a person: use a token from a sign-in",
    )
}

async fn list(State(state): State<AppState>, p: Principal) -> Response {
    let Some(owner) = owner(&p) else {
        return not_a_person();
    };
    match state.db.of(owner) {
        Ok(notes) => Json(NoteList { notes }).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Serialize)]
struct NoteList {
    notes: Vec<Note>,
}

#[derive(Deserialize)]
pub struct NewNote {
    text: String,
}

async fn add(
    State(state): State<AppState>,
    p: Principal,
    body: Result<Json<NewNote>, JsonRejection>,
) -> Response {
    let Some(owner) = owner(&p) else {
        return not_a_person();
    };
    let Ok(Json(new)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send JSON: {\"text\": \"…\"}",
        );
    };
    let text = new.text.trim();
    let chars = text.chars().count();
    if chars == 0
        || chars > MAX_NOTE_CHARS
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a note is 1 to 10000 characters of text",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match state.db.add(owner, text, now).await {
        Ok(note) => (StatusCode::CREATED, Json(note)).into_response(),
        Err(e) => internal(e),
    }
}

/// 200 while the revocation feed is current, 503 when it is stale; what the guard knows.
async fn health(State(state): State<AppState>) -> Response {
    let health = state.guard.health();
    let status = if health.feed_current {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_owner_reads_their_own_notes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let notes = Notes::open(dir.path().join("notes.db")).unwrap();
        notes.add("ada", "first", 1).await.unwrap();
        notes.add("bob", "not ada's", 2).await.unwrap();
        notes.add("ada", "second", 3).await.unwrap();
        let texts = |owner| -> Vec<String> {
            notes
                .of(owner)
                .unwrap()
                .into_iter()
                .map(|n| n.text)
                .collect()
        };
        assert_eq!(texts("ada"), ["first", "second"]);
        assert_eq!(texts("bob"), ["not ada's"]);
        assert!(texts("eve").is_empty());
        // Reopened, the notes are still there.
        drop(notes);
        let notes = Notes::open(dir.path().join("notes.db")).unwrap();
        assert_eq!(notes.of("ada").unwrap().len(), 2);
    }

    /// Reads run on the threads serving requests: one must never wait for a write to commit.
    #[tokio::test]
    async fn a_read_does_not_wait_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        let notes = Notes::open(&path).unwrap();
        notes.add("ada", "kept", 1).await.unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "BEGIN EXCLUSIVE; INSERT INTO notes (owner, text, created_at) \
                 VALUES ('ada', 'not yet', 2);",
            )
            .unwrap();
        let started = std::time::Instant::now();
        let read = notes.of("ada").unwrap();
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 5,
            "the read waited {:?} for the writer",
            started.elapsed()
        );
        assert_eq!(read.len(), 1, "an uncommitted note was read");
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(notes.of("ada").unwrap().len(), 2);
    }
}
