//! What the token endpoint's grants come to: a session with a fresh refresh token, or the
//! reason there is none.

use crate::clock::Millis;
use crate::secret::Secret;

/// A session with a fresh refresh token, as the token endpoint answers it.
#[derive(Debug)]
pub struct Grant {
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: Millis,
    pub nonce: Option<String>,
    pub refresh_token: Secret<String>,
    pub refresh_expires_at: Millis,
    /// The thumbprint of the key the session (its refresh tokens) is bound to, if any.
    pub dpop_jkt: Option<String>,
}

/// Why a code or refresh token was refused; each becomes `invalid_grant` (or `invalid_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    /// The family was revoked earlier; nothing new was learned.
    Revoked,
    /// A retired token came back: the family has just been revoked.
    ReuseDetected,
    /// A used authorization code came back: what it issued has just been revoked.
    CodeReused,
    WrongClient,
    WrongRedirectUri,
    PkceFailed,
    ScopeNotGranted,
    /// The code was bound to a key (`dpop_jkt`) the request did not prove.
    CodeKeyMismatch,
    /// The family is bound to a key the request did not prove: recorded as `key_mismatch`.
    KeyMismatch,
    /// The account was disabled.
    AccountDisabled,
    /// The refresh raised a high-severity suspicion signal and policy revokes on those: the
    /// family has just been revoked.
    SuspectedTheft,
}

impl Refusal {
    pub fn description(self) -> &'static str {
        match self {
            Refusal::Unknown => "the grant is not recognised",
            Refusal::Expired => "the grant has expired",
            Refusal::Revoked => "the session of this refresh token was revoked",
            Refusal::ReuseDetected => {
                "this refresh token was already used; its session has been revoked to protect the account"
            }
            Refusal::CodeReused => {
                "this authorization code was already used; the tokens it issued have been revoked"
            }
            Refusal::WrongClient => "the grant was issued to another client",
            Refusal::WrongRedirectUri => "redirect_uri does not match the authorization request",
            Refusal::PkceFailed => "code_verifier does not match the code_challenge",
            Refusal::ScopeNotGranted => "the requested scope exceeds the scope originally granted",
            Refusal::CodeKeyMismatch => {
                "the authorization request named a DPoP key (dpop_jkt) that this request did not prove"
            }
            Refusal::AccountDisabled => "the account is disabled",
            Refusal::SuspectedTheft => {
                "this session was revoked because its use looked like someone else holds its token"
            }
            Refusal::KeyMismatch => {
                "this refresh token is bound to another device's key; presenting it without that key looks like theft, and it has been recorded"
            }
        }
    }
}

pub type Outcome = std::result::Result<Grant, Refusal>;
