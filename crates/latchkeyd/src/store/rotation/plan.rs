//! What a batch of refreshes comes to before anything is written, and what each is answered:
//! shared by both ways a batch is run (`writer.rs` through sqlx, `direct.rs` on SQLite's own
//! connection), so that neither decides anything the other does not.

use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;

use super::decide::{decide, Ask, Decision, Family, Successor};
use super::{RefreshRequest, RotationPolicy};
use crate::clock::Millis;
use crate::secret::{refresh_token, Secret};
use crate::signals::{self, Signal};
use crate::store::events::Severity;
use crate::store::outcome::{Grant, Outcome, Refusal};
use crate::store::Result;

/// A refresh waiting for its batch.
pub(super) struct Pending {
    pub request: RefreshRequest,
    /// The successor's secret and its hash, made by the caller: the writer is what every
    /// refresh waits on, so it does only what must be serial.
    pub successor: (Secret<[u8; 32]>, Vec<u8>),
    pub reply: oneshot::Sender<Result<Outcome>>,
}

/// What one refresh of the batch comes to, before anything is written.
pub(super) enum Plan {
    /// Waits for the next batch: its decision depends on what an earlier refresh of the batch
    /// writes (the same token, or the same session).
    Deferred,
    Grant {
        successor: Successor,
        /// For a grace replay: the token's first use, kept on it from now on.
        replayed: Option<Millis>,
        signals: Vec<Signal>,
    },
    /// A high-severity signal under `auto_revoke_high`: the family is revoked instead.
    Theft {
        signals: Vec<Signal>,
    },
    Refuse(Refusal),
    RevokedTokenUsed,
    Reuse,
    KeyMismatch,
}

impl Plan {
    /// Needs nothing written but the successor and the session's new head: a rotation with
    /// nothing to record, a refusal that records nothing, or a wait.
    pub fn is_plain(&self) -> bool {
        match self {
            Plan::Deferred | Plan::Refuse(_) => true,
            Plan::Grant {
                replayed, signals, ..
            } => replayed.is_none() && signals.is_empty(),
            Plan::Theft { .. } | Plan::RevokedTokenUsed | Plan::Reuse | Plan::KeyMismatch => false,
        }
    }
}

/// The batch's distinct presented tokens, to load.
pub(super) fn distinct_tokens(batch: &[Pending]) -> Vec<i64> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .map(|p| p.request.token.id)
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Decides every refresh from its family as loaded in the transaction, and assesses the
/// suspicion signals of each rotation.
pub(super) fn plan(
    policy: &RotationPolicy,
    batch: &[Pending],
    families: &HashMap<i64, Family>,
    now: Millis,
) -> Vec<Plan> {
    // One refresh per token and per session per transaction: the first; the others wait.
    let mut tokens = HashSet::new();
    let mut sessions = HashSet::new();
    batch
        .iter()
        .map(|p| {
            let r = &p.request;
            if !tokens.insert(r.token.id) {
                return Plan::Deferred;
            }
            let Some(f) = families.get(&r.token.id) else {
                return Plan::Refuse(Refusal::Unknown);
            };
            if !sessions.insert(f.session_id.as_str()) {
                return Plan::Deferred;
            }
            let ask = Ask {
                token: &r.token,
                client_id: &r.client_id,
                requested_scope: r.requested_scope.as_deref(),
                jkt: r.jkt.as_deref(),
                bind: r.bind,
                now,
            };
            match decide(&policy.tokens, f, &ask) {
                Decision::Rotate(successor) => granted(policy, successor, None, f, r, now),
                Decision::GraceReplay {
                    successor,
                    first_used_at,
                } => granted(policy, successor, Some(first_used_at), f, r, now),
                Decision::Refuse(refusal) => Plan::Refuse(refusal),
                Decision::RevokedTokenUsed => Plan::RevokedTokenUsed,
                Decision::Reuse => Plan::Reuse,
                Decision::KeyMismatch => Plan::KeyMismatch,
            }
        })
        .collect()
}

/// Assesses a rotation's suspicion signals, in the rotation's own transaction.
fn granted(
    policy: &RotationPolicy,
    successor: Successor,
    replayed: Option<Millis>,
    family: &Family,
    r: &RefreshRequest,
    now: Millis,
) -> Plan {
    let signals = signals::assess(&policy.signals, &successor.use_(family), &r.origin, now);
    let theft =
        policy.signals.auto_revoke_high && signals.iter().any(|s| s.severity == Severity::High);
    if theft {
        Plan::Theft { signals }
    } else {
        Plan::Grant {
            successor,
            replayed,
            signals,
        }
    }
}

/// The batch's rotations: each refresh granted a successor, with its family.
pub(super) fn rotations<'a>(
    batch: &'a [Pending],
    plans: &'a [Plan],
    families: &'a HashMap<i64, Family>,
) -> Vec<(&'a Pending, &'a Successor, &'a Family)> {
    batch
        .iter()
        .zip(plans)
        .filter_map(|(p, plan)| match plan {
            Plan::Grant { successor, .. } => {
                Some((p, successor, families.get(&p.request.token.id)?))
            }
            _ => None,
        })
        .collect()
}

/// The answer to a rotation whose successor was written with id `id`.
pub(super) fn grant(p: &Pending, f: &Family, successor: Successor, id: i64) -> Grant {
    Grant {
        session_id: f.session_id.clone(),
        user_id: f.user_id.clone(),
        client_id: f.client_id.clone(),
        scope: successor.scope,
        auth_time: f.auth_time,
        nonce: None,
        refresh_token: refresh_token(id, &p.successor.0),
        refresh_expires_at: successor.expires_at,
        dpop_jkt: successor.dpop_jkt,
    }
}

/// The answers to a batch whose plans are all plain ([`Plan::is_plain`]) once its rotations'
/// successors are written: `heads` holds each written successor's id by session. A rotation
/// with no successor there, its session having moved on since it was decided, waits for the
/// next batch (`None`), to be decided again from what its session is then.
pub(super) fn plain_outcomes(
    batch: &[Pending],
    plans: Vec<Plan>,
    families: &HashMap<i64, Family>,
    heads: &HashMap<String, i64>,
) -> Vec<Option<Outcome>> {
    batch
        .iter()
        .zip(plans)
        .map(|(p, plan)| match plan {
            Plan::Refuse(refusal) => Some(Err(refusal)),
            Plan::Grant { successor, .. } => {
                let f = families.get(&p.request.token.id)?;
                let id = *heads.get(&f.session_id)?;
                Some(Ok(grant(p, f, successor, id)))
            }
            // A plan that writes more is not plain: it waits, and is decided again.
            _ => None,
        })
        .collect()
}
