//! [`Revocations::Introspect`](crate::Revocations::Introspect): latchkeyd answers for each token
//! (RFC 7662), so a revocation counts from the next request on, at the price of a round trip.

use axum::http::StatusCode;
use serde_json::Value;

use crate::verify::Claims;
use crate::{Guard, Rejection};

fn unavailable(dpop: bool) -> Rejection {
    Rejection {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: Some("temporarily_unavailable"),
        description: "this API cannot ask Latchkey about tokens right now",
        dpop,
    }
}

/// The claims of an active access token, as latchkeyd's introspection endpoint gives them.
pub(crate) async fn claims(guard: &Guard, token: &str, dpop: bool) -> Result<Claims, Rejection> {
    let inner = &guard.inner;
    let config = &inner.config;
    let invalid = |d: &'static str| Rejection::new("invalid_token", d, dpop);
    let res = inner
        .http
        .post(&inner.introspection_endpoint)
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "latchkey-guard: cannot reach the introspection endpoint");
            unavailable(dpop)
        })?;
    if !res.status().is_success() {
        tracing::error!(status = %res.status(), "latchkey-guard: the introspection endpoint refused the guard's service account");
        return Err(unavailable(dpop));
    }
    let answer: Value = res.json().await.map_err(|e| {
        tracing::error!(error = %e, "latchkey-guard: the introspection answer is not JSON");
        unavailable(dpop)
    })?;
    if answer["active"] != Value::Bool(true) {
        return Err(invalid(
            "the access token is not active: expired, revoked or unknown",
        ));
    }
    // A refresh token is active too, but it is no access token.
    if !matches!(answer["token_type"].as_str(), Some("Bearer" | "DPoP")) {
        return Err(invalid("the token is not an access token"));
    }
    if answer["iss"].as_str() != Some(config.issuer.as_str()) {
        return Err(invalid("the access token was issued by another server"));
    }
    if let Some(wanted) = &config.audience {
        let named = match &answer["aud"] {
            Value::String(a) => a == wanted,
            Value::Array(all) => all.iter().any(|a| a.as_str() == Some(wanted)),
            _ => false,
        };
        if !named {
            return Err(invalid("the access token was not issued for this API"));
        }
    }
    serde_json::from_value(answer).map_err(|_| invalid("the introspection answer lacks claims"))
}
