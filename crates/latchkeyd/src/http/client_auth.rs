//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3).

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::error::OAuthError;
use super::params::{has_control, Params};
use crate::server::AppState;
use crate::store::clients::{Client, ClientKind};

pub struct Authenticated {
    pub client: Arc<Client>,
}

/// The credentials a request presents (RFC 6749 §2.3.1): the client id, its secret if any,
/// and whether they came as HTTP Basic. Checks their form only; no lookup.
pub(crate) fn credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<(String, Option<String>, bool), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    Ok(match basic {
        Some(encoded) => {
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
            // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if params.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not both",
                ));
            }
            if params.get("client_id").is_some_and(|p| p != decode(id)) {
                return Err(OAuthError::invalid_client(
                    "client_id does not match the credentials",
                    true,
                ));
            }
            let (id, secret) = (decode(id), decode(secret));
            // PostgreSQL refuses NUL in text; no client id or secret holds a control character.
            if has_control(&id) || has_control(&secret) {
                return Err(OAuthError::invalid_client(
                    "malformed Basic credentials",
                    true,
                ));
            }
            (id, Some(secret), true)
        }
        None => (
            params.require("client_id")?.to_string(),
            params.get("client_secret").map(str::to_string),
            false,
        ),
    })
}

/// `client_secret_basic`, `client_secret_post`, or `none` for public clients.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Authenticated, OAuthError> {
    let (client_id, secret, used_basic) = credentials(headers, params)?;
    let client = state
        .client(&client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client", used_basic))?;
    match (client.kind, secret) {
        (ClientKind::Public, None) => Ok(Authenticated { client }),
        (ClientKind::Public, Some(_)) => Err(OAuthError::invalid_client(
            "this is a public client: it has no secret",
            used_basic,
        )),
        (ClientKind::Confidential, Some(secret)) if client.verify_secret(&secret) => {
            Ok(Authenticated { client })
        }
        (ClientKind::Confidential, Some(secret)) => match state.client_from_db(&client_id).await? {
            Some(fresh) if fresh.verify_secret(&secret) => Ok(Authenticated { client: fresh }),
            _ => Err(OAuthError::invalid_client(
                "client authentication failed",
                used_basic,
            )),
        },
        (ClientKind::Confidential, None) => Err(OAuthError::invalid_client(
            "client authentication failed",
            used_basic,
        )),
    }
}
