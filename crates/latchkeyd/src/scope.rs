//! The scopes latchkeyd knows, and which clients may be granted which.
//!
//! A client is registered with the scopes it may ask for; `account` (the user's own devices
//! and sessions) and `support` (other people's, for support staff) only on first-party
//! clients, the apps the operator runs. `support` is granted only when the person signing in
//! has the support role, and the support API checks the role again on every call.
//!
//! Service scopes are for service accounts: confidential clients that sign in as themselves
//! with `client_credentials` (RFC 6749 §4.4). They never reach a user's token, and a service
//! account's token carries nothing else.

pub const OPENID: &str = "openid";
pub const PROFILE: &str = "profile";
pub const EMAIL: &str = "email";
/// A refresh token is issued only when this was asked for (OpenID Connect Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";
/// The account API: the signed-in user's own sessions, families and events.
pub const ACCOUNT: &str = "account";
/// The support API: any account's sessions, families and events, and the audit log.
pub const SUPPORT: &str = "support";

/// Managing Shared Signals streams (SSF 1.0 §8.1): a receiver of session revocations.
pub const SSF: &str = "ssf";
/// Revoking every session of a user (draft-parecki-oauth-global-token-revocation).
pub const GLOBAL_TOKEN_REVOCATION: &str = "global_token_revocation";
/// Introspecting (RFC 7662) any client's tokens, not only the caller's own: a resource server
/// that asks latchkeyd about each token it is shown.
pub const INTROSPECTION: &str = "introspection";

/// The scopes of a user's sign-in.
pub const USER: [&str; 6] = [OPENID, PROFILE, EMAIL, OFFLINE_ACCESS, ACCOUNT, SUPPORT];

/// The scopes of a service account's own token (`client_credentials`).
pub const SERVICE: [&str; 3] = [SSF, GLOBAL_TOKEN_REVOCATION, INTROSPECTION];

/// Every scope latchkeyd knows.
pub const ALL: [&str; 9] = [
    OPENID,
    PROFILE,
    EMAIL,
    OFFLINE_ACCESS,
    ACCOUNT,
    SUPPORT,
    SSF,
    GLOBAL_TOKEN_REVOCATION,
    INTROSPECTION,
];

/// What a client registered without `--scope` may ask for.
pub const DEFAULT_CLIENT: [&str; 4] = [OPENID, PROFILE, EMAIL, OFFLINE_ACCESS];

/// Scopes that reach latchkeyd's own account and support APIs: first-party clients only.
pub const FIRST_PARTY_ONLY: [&str; 2] = [ACCOUNT, SUPPORT];

pub fn is_known(scope: &str) -> bool {
    ALL.contains(&scope)
}

pub fn is_service(scope: &str) -> bool {
    SERVICE.contains(&scope)
}

/// Does the space-separated `scope` contain `wanted`?
pub fn contains(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// The scopes of `scope` that `allowed` holds too, in `scope`'s order, without repeats.
pub fn within<'a>(scope: &'a str, allowed: &[String]) -> Vec<&'a str> {
    let mut kept: Vec<&str> = Vec::new();
    for s in scope.split_ascii_whitespace() {
        if allowed.iter().any(|a| a == s) && !kept.contains(&s) {
            kept.push(s);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_keeps_order_and_drops_the_rest() {
        let allowed: Vec<String> = DEFAULT_CLIENT.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            within("email account openid email support", &allowed),
            ["email", "openid"]
        );
        assert!(contains("openid offline_access", OFFLINE_ACCESS));
        assert!(!contains("openid offline_accessx", OFFLINE_ACCESS));
    }
}
