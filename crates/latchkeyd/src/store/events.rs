//! Security events: what happened to a session or account, with its evidence.

use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::{Origin, Result};
use crate::clock::Millis;
use crate::db::Db;
use crate::secret::new_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub severity: Severity,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub origin: &'a Origin,
    pub details: serde_json::Value,
}

pub async fn record<'c, E>(exec: E, event: NewEvent<'_>, now: Millis) -> Result<()>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO security_events (id, at, kind, severity, user_id, session_id, ip, user_agent, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(now)
    .bind(event.kind)
    .bind(event.severity.as_str())
    .bind(event.user_id)
    .bind(event.session_id)
    .bind(event.origin.ip.as_deref())
    .bind(event.origin.user_agent.as_deref())
    .bind(event.details.to_string())
    .execute(exec)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub at: Millis,
    pub kind: String,
    pub severity: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

/// Events of one session, oldest first.
pub async fn for_session(db: &Db, session_id: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT id, at, kind, severity, user_id, session_id, ip, user_agent, details \
         FROM security_events WHERE session_id = $1 ORDER BY at, id",
    )
    .bind(session_id)
    .fetch_all(db.read())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Event {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                kind: row.try_get("kind")?,
                severity: row.try_get("severity")?,
                user_id: row.try_get("user_id")?,
                session_id: row.try_get("session_id")?,
                ip: row.try_get("ip")?,
                user_agent: row.try_get("user_agent")?,
                details: serde_json::from_str(&row.try_get::<String, _>("details")?)
                    .unwrap_or_default(),
            })
        })
        .collect()
}
