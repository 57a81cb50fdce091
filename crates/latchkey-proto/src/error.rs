//! The account and support API's errors: `{"error", "error_description"}`, the shape of an
//! OAuth error (RFC 6749 §5.2), so a client reads one error format everywhere.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

crate::names! {
    /// The stable codes of the API's errors.
    pub enum ApiErrorCode {
        /// 400: a parameter or body the API cannot take.
        InvalidRequest = "invalid_request",
        /// 401: the access token is missing, invalid, expired or revoked (RFC 6750).
        InvalidToken = "invalid_token",
        /// 401: the DPoP proof is missing or wrong (RFC 9449).
        InvalidDpopProof = "invalid_dpop_proof",
        /// 401: the proof must carry the server's nonce (RFC 9449 §9).
        UseDpopNonce = "use_dpop_nonce",
        /// 401: the call needs a fresher sign-in (RFC 9470).
        InsufficientUserAuthentication = "insufficient_user_authentication",
        /// 403: the token lacks the scope the call needs (RFC 6750).
        InsufficientScope = "insufficient_scope",
        /// 403: the caller is known and may not do this.
        Forbidden = "forbidden",
        /// 404.
        NotFound = "not_found",
        /// 429: too many failed requests; `Retry-After` says when to try again.
        TemporarilyUnavailable = "temporarily_unavailable",
        /// 500: the cause is logged at the server, never sent.
        ServerError = "server_error",
    }
}

/// An API error: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    pub error: ApiErrorCode,
    pub error_description: String,
}
