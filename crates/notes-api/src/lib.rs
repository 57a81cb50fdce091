//! notes-api: each user's notes, behind [`latchkey_guard`]. A note belongs to the person whose
//! access token wrote it (`sub`); a token whose session was revoked in Latchkey is refused at
//! once, though it has not expired.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_guard::{Guard, Principal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;

#[derive(Clone)]
pub struct AppState {
    pub guard: Guard,
    pub db: SqlitePool,
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Guard {
        state.guard.clone()
    }
}

/// Opens (creating if need be) the notes database at `path`.
pub async fn open(path: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let db = SqlitePoolOptions::new().connect_with(options).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, \
         text TEXT NOT NULL, created_at INTEGER NOT NULL)",
    )
    .execute(&db)
    .await?;
    sqlx::query("CREATE INDEX IF NOT EXISTS notes_owner ON notes (owner, id)")
        .execute(&db)
        .await?;
    Ok(db)
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

fn internal(e: sqlx::Error) -> Response {
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
    match notes_of(&state.db, owner).await {
        Ok(notes) => Json(json!({ "notes": notes })).into_response(),
        Err(e) => internal(e),
    }
}

async fn notes_of(db: &SqlitePool, owner: &str) -> Result<Vec<Note>, sqlx::Error> {
    sqlx::query("SELECT id, text, created_at FROM notes WHERE owner = ? ORDER BY id")
        .bind(owner)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(Note {
                id: r.try_get("id")?,
                text: r.try_get("text")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
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
    let id =
        sqlx::query("INSERT INTO notes (owner, text, created_at) VALUES (?, ?, ?) RETURNING id")
            .bind(owner)
            .bind(text)
            .bind(now)
            .fetch_one(&state.db)
            .await
            .and_then(|r| r.try_get::<i64, _>("id"));
    match id {
        Ok(id) => (
            StatusCode::CREATED,
            Json(Note {
                id,
                text: text.to_string(),
                created_at: now,
            }),
        )
            .into_response(),
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
