//! A family's rotation chain, walked from its head, for the device and support views.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::sessions::LinkState;
use super::{named, Result};
use crate::clock::Millis;
use crate::db::Db;

/// One generation of a family, for the rotation chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    pub generation: i64,
    pub parent_generation: Option<i64>,
    pub state: LinkState,
    pub retired_reason: Option<String>,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub issued_ip: Option<String>,
    pub issued_user_agent: Option<String>,
    pub used_at: Option<Millis>,
    pub used_ip: Option<String>,
    pub used_user_agent: Option<String>,
    pub grace_replays: i64,
}

/// A link's state and use are not stored: a token is `active` while it is the head of a live
/// session, `revoked` as the head of a revoked one, and otherwise `rotated`, used when and where
/// its successor (the link walked just before it) was issued. A token replayed within the grace
/// window has two successors; its use is the first one's time (`first_used_at`), and the
/// address and user agent of the replay.
const CHAIN_COLUMNS: &str = "t.generation, t.parent_generation, \
     CASE WHEN w.child_id IS NOT NULL THEN 'rotated' WHEN s.revoked_at IS NOT NULL THEN 'revoked' ELSE 'active' END AS state, \
     CASE WHEN w.child_id IS NOT NULL THEN 'rotated' ELSE s.revoke_reason END AS retired_reason, \
     t.issued_at, t.expires_at, t.issued_ip, t.issued_user_agent, COALESCE(t.first_used_at, c.issued_at) AS used_at, \
     c.issued_ip AS used_ip, \
     c.issued_user_agent AS used_user_agent, t.grace_replays";

/// The family's tokens walked from its newest (the session's head) back along `parent_id`, at
/// most `$2` of them, each with the one walked before it (its successor).
pub(crate) fn chain_walk(filter: &str) -> String {
    format!(
        "WITH RECURSIVE walk (id, parent_id, child_id, step) AS ( \
           SELECT t.id, t.parent_id, CAST(NULL AS BIGINT), 1 FROM refresh_tokens t \
           JOIN sessions s ON t.id = s.head_token_id WHERE s.id = $1 \
           UNION ALL \
           SELECT t.id, t.parent_id, w.id, w.step + 1 FROM refresh_tokens t JOIN walk w ON t.id = w.parent_id WHERE w.step < $2 \
         ) SELECT {CHAIN_COLUMNS} FROM walk w JOIN refresh_tokens t ON t.id = w.id JOIN sessions s ON s.id = t.session_id \
         LEFT JOIN refresh_tokens c ON c.id = w.child_id {filter}"
    )
}

/// The whole chain, oldest first.
pub async fn chain(db: &Db, session_id: &str) -> Result<Vec<ChainLink>> {
    let rows = sqlx::query(&chain_walk("ORDER BY t.generation"))
        .bind(session_id)
        .bind(i64::MAX)
        .fetch_all(db.read())
        .await?;
    chain_links(&rows)
}

/// Up to `limit` generations before `before` (or the newest), newest first. `head` is the
/// session's generation: the walk from it stops as soon as the page is full.
pub async fn chain_page(
    db: &Db,
    session_id: &str,
    head: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ChainLink>> {
    // Generations fall by at least one per step, so this many steps reach below `before` and
    // then fill the page.
    // `before` comes from the caller: no arithmetic on it may overflow.
    let steps = before
        .map_or(0, |b| head.saturating_sub(b).saturating_add(1).max(0))
        .saturating_add(limit);
    let rows = sqlx::query(&chain_walk(
        "WHERE ($3 IS NULL OR t.generation < $3) ORDER BY t.generation DESC LIMIT $4",
    ))
    .bind(session_id)
    .bind(steps)
    .bind(before)
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    chain_links(&rows)
}

pub(crate) fn chain_links(rows: &[AnyRow]) -> Result<Vec<ChainLink>> {
    rows.iter()
        .map(|r| {
            Ok(ChainLink {
                generation: r.try_get("generation")?,
                parent_generation: r.try_get("parent_generation")?,
                state: named(r, "state")?,
                retired_reason: r.try_get("retired_reason")?,
                issued_at: r.try_get("issued_at")?,
                expires_at: r.try_get("expires_at")?,
                issued_ip: r.try_get("issued_ip")?,
                issued_user_agent: r.try_get("issued_user_agent")?,
                used_at: r.try_get("used_at")?,
                used_ip: r.try_get("used_ip")?,
                used_user_agent: r.try_get("used_user_agent")?,
                grace_replays: r.try_get("grace_replays")?,
            })
        })
        .collect()
}
