//! Sign-in with a code (RFC 8628): a person approving a device's request at `/device`, and the
//! device's poll that turns the approval into its session.

use serde_json::json;

use super::signin::{check_password, record_signed_in, Checked, SignInContext};
use crate::clock::Millis;
use crate::config::{SignalPolicy, TokenPolicy};
use crate::db::Db;
use crate::signals;
use crate::store::audit::Actor;
use crate::store::codes::{open_session, NewSession};
use crate::store::device::{self, Pending, Poll};
use crate::store::events::{self, Audit, NewEvent};
use crate::store::outcome::{Grant, Refusal};
use crate::store::throttle::Throttled;
use crate::store::{Origin, Result};

/// What a submitted approval form comes to.
pub enum Approval {
    /// The device will get its session at its next poll.
    Approved,
    /// Past a sign-in limit: nothing was checked.
    Throttled(Throttled),
    /// The email address and password do not match an account. `denied`: that was the code's
    /// last try, and the device is refused.
    Refused { denied: bool },
    /// The request was decided or expired meanwhile.
    Gone,
}

/// Checks the password on `pending`'s approval form under the sign-in limits; a match approves
/// the request for the scope the user may have, recorded with the sign-in.
pub async fn approve(
    cx: &SignInContext<'_>,
    pending: &Pending,
    email: &str,
    password: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Approval> {
    let checked = check_password(
        cx,
        &pending.client_id,
        &pending.scope,
        email,
        password,
        origin,
        now,
    )
    .await?;
    let (user_id, scope) = match checked {
        Checked::User { user_id, scope } => (user_id, scope),
        Checked::Throttled(t) => return Ok(Approval::Throttled(t)),
        Checked::Refused => {
            let max = cx.policy.device_code_max_failures;
            let denied = device::failed_signin(cx.db, &pending.id, max).await?;
            return Ok(Approval::Refused { denied });
        }
    };
    let mut tx = cx.db.begin_write().await?;
    if !device::approve(&mut tx, &pending.id, &user_id, &scope, origin, now).await? {
        return Ok(Approval::Gone);
    }
    let details = json!({
        "client_id": pending.client_id,
        "device": pending.device,
        "device_ip": pending.ip,
        "with_code": true,
    });
    record_signed_in(&mut tx, &user_id, details, origin, now).await?;
    tx.commit().await?;
    Ok(Approval::Approved)
}

/// What a device's poll at the token endpoint presents.
pub struct DevicePoll<'a> {
    pub device_code: &'a str,
    pub client_id: &'a str,
    /// The thumbprint of the key proved with the request (DPoP), if any.
    pub dpop_jkt: Option<&'a str>,
    /// Bind the new session's refresh tokens to that key (public clients, RFC 9449 §5).
    pub bind_refresh: bool,
}

/// What a poll comes to (RFC 8628 §3.5).
pub enum Polled {
    Pending,
    SlowDown,
    Denied,
    Expired,
    Refused(Refusal),
    Granted(Grant),
}

/// A device's poll: once its request is approved, its session (with the device's own address
/// and software, not the approving browser's) and the first token of its family, in the
/// transaction that spends the request.
pub async fn poll(
    db: &Db,
    tokens: &TokenPolicy,
    signal_policy: &SignalPolicy,
    request: &DevicePoll<'_>,
    origin: &Origin,
    now: Millis,
) -> Result<Polled> {
    let mut tx = db.begin_write().await?;
    let polled = device::poll(&mut tx, request.device_code, request.client_id, now).await?;
    let approved = match polled {
        Poll::Approved(approved) => approved,
        other => {
            tx.commit().await?;
            return Ok(match other {
                Poll::Pending => Polled::Pending,
                Poll::SlowDown => Polled::SlowDown,
                Poll::Denied => Polled::Denied,
                Poll::Expired => Polled::Expired,
                Poll::WrongClient => Polled::Refused(Refusal::WrongClient),
                Poll::Unknown | Poll::Approved(_) => Polled::Refused(Refusal::Unknown),
            });
        }
    };
    // RFC 9449 §10 by analogy with the code grant: a request that named a key is redeemed
    // only with that key. The request is spent all the same.
    if approved
        .dpop_jkt
        .as_deref()
        .is_some_and(|bound| Some(bound) != request.dpop_jkt)
    {
        tx.commit().await?;
        return Ok(Polled::Refused(Refusal::CodeKeyMismatch));
    }
    let session = NewSession {
        user_id: approved.user_id,
        client_id: request.client_id,
        scope: approved.scope,
        auth_time: approved.auth_time,
        nonce: None,
        device: approved.device,
        bound: request.dpop_jkt.filter(|_| request.bind_refresh),
    };
    let grant = match open_session(&mut tx, session, tokens, origin, now).await? {
        Ok(grant) => grant,
        Err(refusal) => {
            tx.commit().await?;
            return Ok(Polled::Refused(refusal));
        }
    };
    let elsewhere = signals::approved_elsewhere(
        signal_policy,
        origin.ip.as_deref(),
        approved.approver_ip.as_deref(),
    );
    if let Some(signal) = elsewhere {
        events::record(
            &mut tx,
            NewEvent {
                kind: signal.kind,
                severity: signal.severity,
                user_id: Some(&grant.user_id),
                session_id: Some(&grant.session_id),
                origin,
                details: signal.details,
                audit: Audit::As(Actor::System),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Polled::Granted(grant))
}
