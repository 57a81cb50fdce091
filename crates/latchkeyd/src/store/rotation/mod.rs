//! The refresh grant: rotation and reuse detection, on SQLite and PostgreSQL alike.
//!
//! A session is one sign-in on one device; its refresh tokens form one family. A token is live
//! only while it is its session's head (`sessions.head_token_id`), so a family cannot hold two.
//!
//! - `decide.rs`: what a presented token earns (rotation, grace replay, refusal, reuse), from
//!   its family as stored. Pure; every rule lives there once.
//! - `writer.rs`: the one writer that runs decisions. Concurrent refreshes are grouped into one
//!   transaction (group commit), their families locked in id order, loaded, decided and
//!   written with a few set-wide statements, the suspicion signals assessed and recorded in the
//!   same transaction; each is answered once that transaction has committed.
//! - `plan.rs`: what a batch comes to before anything is written, and each refresh's answer.
//! - `direct.rs`: on SQLite, the writer's own connection for batches that only rotate.
//! - `sql.rs`: the statements, one text for both databases, and their rows.

mod decide;
mod direct;
mod plan;
mod sql;
mod writer;

pub use decide::{refresh_expiry, refreshed_scope};
pub use writer::Rotator;

pub(crate) use writer::insert_first_token;

use crate::config::{SignalPolicy, TokenPolicy};
use crate::secret::RefreshTokenRef;

use super::Origin;

/// One refresh-grant request.
#[derive(Debug, Clone)]
pub struct RefreshRequest {
    pub token: RefreshTokenRef,
    pub client_id: String,
    /// A narrower scope asked for, if any.
    pub requested_scope: Option<String>,
    /// The thumbprint of the key the request proved (DPoP), if any.
    pub jkt: Option<String>,
    /// Bind an unbound family to that key (public clients, RFC 9449 §5).
    pub bind: bool,
    pub origin: Origin,
}

/// What the rotation writer decides by.
#[derive(Debug, Clone)]
pub struct RotationPolicy {
    pub tokens: TokenPolicy,
    pub signals: SignalPolicy,
    /// Revoke a bound family whose token comes without its key (see `DpopPolicy`).
    pub revoke_on_key_mismatch: bool,
}
