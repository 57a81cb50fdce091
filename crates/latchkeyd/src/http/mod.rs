//! HTTP: the OAuth / OpenID Connect endpoints, the sign-in pages and operations endpoints.

pub mod api;
pub(crate) mod authorize;
pub(crate) mod client_auth;
mod device;
mod dpop;
pub mod error;
pub(crate) mod oauth;
mod origin;
pub mod params;
mod ssf;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::server::AppState;
use error::OAuthError;

pub fn router(state: AppState) -> Router {
    let limits = &state.settings.limits;
    let (api_routes, openapi) = api::routes();
    let openapi = openapi.to_json().expect("the OpenAPI document serializes");
    Router::new()
        .merge(api_routes)
        .route("/openapi.json", get(move || async move { json_body(openapi.clone(), "no-cache") }))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/jwks.json", get(jwks))
        .route("/authorize", get(authorize::start).post(authorize::submit))
        .route("/device_authorization", post(device::authorize_device))
        .route("/device", get(device::start).post(device::submit))
        .route("/token", post(oauth::token))
        .route("/revoke", post(oauth::revoke))
        .route("/introspect", post(oauth::introspect))
        .route("/userinfo", get(oauth::userinfo).post(oauth::userinfo))
        .route("/.well-known/ssf-configuration", get(ssf::configuration))
        .route(
            "/ssf/streams",
            post(ssf::create)
                .get(ssf::read)
                .patch(ssf::update)
                .put(ssf::update)
                .delete(ssf::delete),
        )
        .route("/ssf/status", get(ssf::read_status).post(ssf::update_status))
        .route("/ssf/verify", post(ssf::verify))
        .route("/ssf/poll/{stream_id}", post(ssf::poll))
        .route("/global-token-revocation", post(ssf::global_revocation))
        .route("/assets/latchkey.css", get(stylesheet))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // Oversized bodies fail inside the extractors, so they get the endpoint's own error format.
        .layer(DefaultBodyLimit::max(limits.request_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        // Spans carry the method and path only: query strings and bodies may hold secrets.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            OAuthError::server_error().into_response()
        }))
}

/// The metrics listener's routes (`metrics_listen`): `/metrics` and `/healthz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

pub fn discovery_document(issuer: &str) -> String {
    let url = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": url("/authorize"),
        "device_authorization_endpoint": url("/device_authorization"),
        "token_endpoint": url("/token"),
        "userinfo_endpoint": url("/userinfo"),
        "jwks_uri": url("/jwks.json"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "global_token_revocation_endpoint": url("/global-token-revocation"),
        "scopes_supported": crate::scope::ALL,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", crate::store::clients::DEVICE_CODE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA", "ES256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "email", "email_verified", "name"],
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": crate::dpop::ALGS,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        // Where Latchkey clients find the account API (sessions, families); see /openapi.json.
        "latchkey_account_api": url("/api/v1"),
    })
    .to_string()
}

fn json_body(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    json_body(state.discovery.clone(), "public, max-age=300")
}

async fn jwks(State(state): State<AppState>) -> Response {
    json_body(state.keys.jwks().to_string(), "public, max-age=60")
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/latchkey.css"),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(state.db.read()).await {
        Ok(_) => (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "there is nothing at this address",
    )
}

async fn method_not_allowed(method: Method) -> OAuthError {
    OAuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here"),
    )
}
