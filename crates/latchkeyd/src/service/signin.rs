//! Signing in at the authorization endpoint's form: the password check under the sign-in
//! limits, and the authorization code it earns.

use serde_json::json;
use tokio::sync::Semaphore;

use crate::clock::Millis;
use crate::config::{SignInPolicy, TokenPolicy};
use crate::db::{Db, Tx};
use crate::scope;
use crate::secret::Secret;
use crate::store::audit::Actor;
use crate::store::auth_requests::AuthRequest;
use crate::store::events::{self, Audit, EventKind, NewEvent, Severity};
use crate::store::throttle::{self, Throttled};
use crate::store::users::{self, Role};
use crate::store::{codes, Origin, Result, StoreError};

/// What a sign-in needs besides the form.
pub struct SignInContext<'a> {
    pub db: &'a Db,
    pub policy: &'a SignInPolicy,
    pub tokens: &'a TokenPolicy,
    /// Turns for password checks: argon2id takes 19 MiB a check, so a burst waits for a turn
    /// rather than exhausting memory.
    pub password_checks: &'a Semaphore,
}

/// What a submitted sign-in form comes to.
pub enum SignIn {
    /// The code to send back to the app.
    Issued(Secret<String>),
    /// Past a sign-in limit: nothing was checked.
    Throttled(Throttled),
    /// The email address and password do not match an account (or the account is disabled).
    Refused,
    /// The request was used meanwhile (a second submission of the same form).
    Gone,
}

/// What a password check under the sign-in limits comes to.
pub enum Checked {
    /// The password matches: the account, and the scope of `requested` it may have.
    User {
        user_id: String,
        scope: String,
    },
    Throttled(Throttled),
    Refused,
}

/// Checks a password under the sign-in limits, for a sign-in to `client_id` asking for
/// `requested`. Every outcome but success is recorded: a throttled attempt in the limits'
/// report, a failure as `signin_failed`; the caller records the success with what it earned.
pub async fn check_password(
    cx: &SignInContext<'_>,
    client_id: &str,
    requested: &str,
    email: &str,
    password: &str,
    origin: &Origin,
    now: Millis,
) -> Result<Checked> {
    let attempt =
        match throttle::attempt(cx.db, cx.policy, email, origin.ip.as_deref(), now).await? {
            Ok(attempt) => attempt,
            Err(throttled) => {
                let known = users::find_by_email(cx.db, email).await?;
                throttle::report(
                    cx.db,
                    &throttled,
                    known.as_ref().map(|u| u.id.as_str()),
                    client_id,
                    origin,
                    cx.policy,
                    now,
                )
                .await?;
                return Ok(Checked::Throttled(throttled));
            }
        };

    let user = {
        let _turn = cx
            .password_checks
            .acquire()
            .await
            .map_err(|_| StoreError::Invalid("the server is shutting down".into()))?;
        users::authenticate(cx.db, email, password).await?
    };
    let Some(user) = user else {
        // The attempt recorded by the limits stays: it is this failure.
        let known = users::find_by_email(cx.db, email).await?;
        events::record_alone(
            cx.db,
            NewEvent {
                kind: EventKind::SigninFailed,
                severity: Severity::Low,
                user_id: known.as_ref().map(|u| u.id.as_str()),
                session_id: None,
                origin,
                details: json!({ "client_id": client_id }),
                // Whoever typed the password is unknown; the record keeps their address.
                audit: Audit::As(Actor::System),
            },
            now,
        )
        .await?;
        return Ok(Checked::Refused);
    };
    throttle::succeeded(cx.db, attempt).await?;
    Ok(Checked::User {
        scope: scope_for(requested, user.role),
        user_id: user.id,
    })
}

/// The `signed_in` event of a password sign-in, in the sign-in's transaction.
pub(crate) async fn record_signed_in(
    tx: &mut Tx,
    user_id: &str,
    details: serde_json::Value,
    origin: &Origin,
    now: Millis,
) -> Result<()> {
    events::record(
        tx,
        NewEvent {
            kind: EventKind::SignedIn,
            severity: Severity::Info,
            user_id: Some(user_id),
            session_id: None,
            origin,
            details,
            audit: Audit::As(Actor::User(user_id)),
        },
        now,
    )
    .await
}

/// Checks the password for `request` under the sign-in limits; a match earns an authorization
/// code for the scope the user may have, recorded with the sign-in in one transaction.
pub async fn sign_in(
    cx: &SignInContext<'_>,
    request: &AuthRequest,
    email: &str,
    password: &str,
    origin: &Origin,
    now: Millis,
) -> Result<SignIn> {
    let (user_id, scope) = match check_password(
        cx,
        &request.client_id,
        &request.scope,
        email,
        password,
        origin,
        now,
    )
    .await?
    {
        Checked::User { user_id, scope } => (user_id, scope),
        Checked::Throttled(t) => return Ok(SignIn::Throttled(t)),
        Checked::Refused => return Ok(SignIn::Refused),
    };
    let mut tx = cx.db.begin_write().await?;
    let Some(code) =
        codes::issue_code(&mut tx, request, &scope, &user_id, origin, cx.tokens, now).await?
    else {
        return Ok(SignIn::Gone);
    };
    let details = json!({ "client_id": request.client_id, "device": request.device });
    record_signed_in(&mut tx, &user_id, details, origin, now).await?;
    tx.commit().await?;
    Ok(SignIn::Issued(code))
}

/// Staff powers only for staff: anyone else signing in to an app that asks for `support` gets
/// the rest of what it asked for.
fn scope_for(requested: &str, role: Role) -> String {
    if role == Role::Support {
        return requested.to_string();
    }
    requested
        .split_ascii_whitespace()
        .filter(|s| *s != scope::SUPPORT)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_staff_keep_the_support_scope() {
        let asked = "openid support offline_access";
        assert_eq!(scope_for(asked, Role::Support), asked);
        assert_eq!(scope_for(asked, Role::User), "openid offline_access");
    }
}
