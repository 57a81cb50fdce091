//! The rotation decision: what one presented refresh token earns, given its family as stored.
//!
//! Pure: no database, no clock. The writer (`writer.rs`) loads the family under the lock that
//! keeps the decision true until its transaction commits, calls [`decide`], and writes what it
//! returns. Reuse detection, the grace window, lifetimes, scope narrowing and key binding are
//! each decided here and nowhere else.

use crate::clock::{secs, Millis};
use crate::config::TokenPolicy;
use crate::secret::{constant_time_eq, RefreshTokenRef};
use crate::signals::{PriorUse, Use};

use super::super::outcome::Refusal;
use super::super::Origin;

/// The refresh window `refresh_storm` counts in.
const RATE_WINDOW: Millis = 60_000;

/// The presented token's row and its session's, as loaded inside the rotation's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub token_id: i64,
    pub secret_hash: Vec<u8>,
    pub generation: i64,
    pub issued: PriorUse,
    pub token_expires_at: Millis,
    /// When the token was first used, kept from its first grace replay on (its replacement
    /// successor no longer shows it).
    pub first_used_at: Option<Millis>,
    pub grace_replays: i64,
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: Millis,
    pub session_expires_at: Millis,
    pub revoked: Option<Revoked>,
    /// The family's one live token (while the session is not revoked).
    pub head: Option<i64>,
    pub session_generation: i64,
    pub dpop_jkt: Option<String>,
    pub window_start: Millis,
    pub window_count: i64,
    /// The head's parent and issue time: a head whose parent is the presented token is the
    /// successor a client may have lost.
    pub head_parent: Option<i64>,
    pub head_issued_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub reason: Option<String>,
}

impl Family {
    /// The family as this token's rotation to `successor` leaves it, the session moved to
    /// `head` (the successor's id and its secret's hash), issued at `now` to `origin`: what a
    /// load of `head` reads once the rotation has committed.
    pub fn rotated(
        &self,
        successor: &Successor,
        head: i64,
        secret_hash: Vec<u8>,
        origin: &Origin,
        now: Millis,
    ) -> Self {
        Family {
            token_id: head,
            secret_hash,
            generation: successor.generation,
            issued: PriorUse {
                at: now,
                ip: origin.ip.clone(),
                user_agent: origin.user_agent.clone(),
            },
            head_issued_at: Some(now),
            token_expires_at: successor.expires_at,
            first_used_at: None,
            grace_replays: 0,
            session_id: self.session_id.clone(),
            user_id: self.user_id.clone(),
            client_id: self.client_id.clone(),
            scope: self.scope.clone(),
            auth_time: self.auth_time,
            session_expires_at: self.session_expires_at,
            revoked: None,
            head: Some(head),
            session_generation: successor.generation,
            dpop_jkt: successor.dpop_jkt.clone(),
            window_start: successor.window_start,
            window_count: successor.window_count,
            head_parent: Some(self.token_id),
        }
    }
}

/// One refresh request, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub token: &'a RefreshTokenRef,
    pub client_id: &'a str,
    /// A narrower scope asked for, if any.
    pub requested_scope: Option<&'a str>,
    /// The thumbprint of the key the request proved (DPoP), if any.
    pub jkt: Option<&'a str>,
    /// Bind an unbound family to that key (public clients, RFC 9449 §5).
    pub bind: bool,
    pub now: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The presented token is the head: retire it for a successor.
    Rotate(Successor),
    /// The presented token is the head's parent, replayed within the grace window by a client
    /// that lost the answer: the head it never received is replaced by a new successor.
    GraceReplay {
        successor: Successor,
        /// The token's first use, kept on it from now on.
        first_used_at: Millis,
    },
    /// Refused; nothing to write.
    Refuse(Refusal),
    /// A token of a revoked family: refused, and the attempt recorded.
    RevokedTokenUsed,
    /// RFC 9700 §4.14.2: a retired token came back, so the whole family is revoked.
    Reuse,
    /// The family is bound to a key the request did not prove: refused, recorded, and the
    /// family revoked if the policy says so.
    KeyMismatch,
}

/// What a rotation writes: the family's next token and the session's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    /// The head the session must still have when it moves (the lock guarantees it).
    pub expected_head: i64,
    pub generation: i64,
    pub expires_at: Millis,
    pub scope: String,
    /// The key the family is bound to after this rotation.
    pub dpop_jkt: Option<String>,
    pub window_start: Millis,
    pub window_count: i64,
}

impl Successor {
    /// This rotation as the suspicion signals see it. It follows the presented token's issue,
    /// a grace replay too: a replay is compared with the token it replays, as a rotation of it
    /// would be.
    pub fn use_<'f>(&self, family: &'f Family) -> Use<'f> {
        Use {
            prior: &family.issued,
            in_window: self.window_count,
            generation: self.generation,
        }
    }
}

/// Decides one refresh of the token `f` holds the row of (a token no row has is unknown).
pub fn decide(policy: &TokenPolicy, f: &Family, ask: &Ask<'_>) -> Decision {
    if !constant_time_eq(&f.secret_hash, &ask.token.secret_hash) {
        return Decision::Refuse(Refusal::Unknown);
    }
    if f.revoked.is_some() {
        return Decision::RevokedTokenUsed;
    }
    let now = ask.now;
    if f.head == Some(f.token_id) {
        if f.token_expires_at <= now || f.session_expires_at <= now {
            return Decision::Refuse(Refusal::Expired);
        }
        return successor(policy, f, ask, f.token_id);
    }
    // A retired token. The window runs from its first use: its first successor's issue.
    if let (Some(head), Some(head_issued)) = (f.head, f.head_issued_at) {
        let first_used_at = f.first_used_at.unwrap_or(head_issued);
        let in_window = f.head_parent == Some(f.token_id)
            && policy.reuse_grace_secs > 0
            && now - first_used_at <= secs(policy.reuse_grace_secs);
        if in_window {
            if f.session_expires_at <= now {
                // A lost response at the very end of the family's life: nothing to forgive.
                return Decision::Refuse(Refusal::Expired);
            }
            if f.grace_replays < i64::from(policy.reuse_grace_max_replays) {
                return match successor(policy, f, ask, head) {
                    Decision::Rotate(successor) => Decision::GraceReplay {
                        successor,
                        first_used_at,
                    },
                    refused => refused,
                };
            }
        }
    }
    Decision::Reuse
}

/// The successor of a live (or forgiven) token, after the checks every rotation makes: the
/// client, the key, the scope. `Rotate`, or why not.
fn successor(policy: &TokenPolicy, f: &Family, ask: &Ask<'_>, expected_head: i64) -> Decision {
    if f.client_id != ask.client_id {
        return Decision::Refuse(Refusal::WrongClient);
    }
    let dpop_jkt = match (&f.dpop_jkt, ask.jkt) {
        (Some(bound), proved) if Some(bound.as_str()) != proved => return Decision::KeyMismatch,
        (Some(bound), _) => Some(bound.clone()),
        // An unbound family of a public client that now proves a key is bound from here on.
        (None, Some(proved)) if ask.bind => Some(proved.to_string()),
        (None, _) => None,
    };
    let Some(scope) = refreshed_scope(ask.requested_scope, &f.scope) else {
        return Decision::Refuse(Refusal::ScopeNotGranted);
    };
    let now = ask.now;
    let (window_start, window_count) = if f.window_start > now - RATE_WINDOW {
        (f.window_start, f.window_count + 1)
    } else {
        (now, 1)
    };
    Decision::Rotate(Successor {
        expected_head,
        generation: f.session_generation + 1,
        expires_at: refresh_expiry(policy, now, f.session_expires_at),
        scope,
        dpop_jkt,
        window_start,
        window_count,
    })
}

/// The scope of a refresh: the granted one, or a narrower one asked for; `None` if the request
/// asks for anything not granted.
pub fn refreshed_scope(requested: Option<&str>, granted: &str) -> Option<String> {
    let Some(requested) = requested else {
        return Some(granted.to_string());
    };
    let within = requested
        .split_ascii_whitespace()
        .all(|s| granted.split_ascii_whitespace().any(|g| g == s));
    within.then(|| {
        requested
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// When a new refresh token expires: its idle lifetime, capped by the family's absolute
/// lifetime, which rotation never extends.
pub fn refresh_expiry(policy: &TokenPolicy, now: Millis, session_expires_at: Millis) -> Millis {
    (now + secs(policy.family_idle_secs)).min(session_expires_at)
}
