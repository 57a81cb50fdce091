//! The account API (`/api/v1/me/…`, the signed-in user with their access token) and the
//! support-staff API (`/api/v1/admin/…`, role `support`), described at `/openapi.json`.
//!
//! Errors have the OAuth error shape everywhere (`error`: a stable code, `error_description`: a
//! human message), so a client has one error format to read (`error.rs`).

mod admin;
mod error;
mod me;
pub mod stream;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dpop::{resource_access, Resource};
use super::error::OAuthError;
use super::params::{control_in, has_control};
use crate::scope;
use crate::server::AppState;
use crate::store::users::{self, Role, User};
use crate::tokens::{self, AccessClaims};
pub use error::ApiError;
pub use latchkey_proto::{ApiErrorBody, ReasonBody};

pub fn not_found(what: &'static str) -> ApiError {
    ApiError::NotFound(what)
}

/// The signed-in user of an account-API call, from a live access token for this API with the
/// `account` scope: other apps a user signs in to must not list or revoke their sessions.
pub struct Caller {
    pub user: User,
    /// The session the caller's token belongs to.
    pub session_id: String,
    pub claims: AccessClaims,
}

/// The caller of an API call, from a live access token whose audience is this API and whose
/// scope holds `needed`; the account read from the database, so a disabled one is refused.
async fn api_caller(
    parts: &Parts,
    state: &AppState,
    needed: &'static str,
) -> Result<Caller, ApiError> {
    let audience = tokens::api_audience(&state.issuer);
    let resource = Resource {
        audience: &audience,
        scope: needed,
        lacking_scope: match needed {
            scope::SUPPORT => "the support API needs the `support` scope, which Latchkey's own apps get only when a support-staff account signs in",
            _ => "this API needs an access token with the `account` scope, which only Latchkey's own apps are granted",
        },
    };
    let claims = resource_access(
        state,
        &parts.headers,
        parts.method.as_str(),
        parts.uri.path(),
        &resource,
    )
    .await?;
    // Service scopes and user scopes are never registered together for one token: this is the
    // second line.
    let session_id = claims.sid.clone().ok_or(ApiError::Forbidden(
        "this API is for a user's own token, not a service account's",
    ))?;
    let user = users::find(&state.db, &claims.sub)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(OAuthError::invalid_token(
            "the account no longer exists or is disabled",
        ))?;
    Ok(Caller {
        user,
        session_id,
        claims,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        api_caller(parts, state, scope::ACCOUNT).await
    }
}

/// A support-staff member: a token with the `support` scope (granted only to first-party apps,
/// only at a support-role sign-in) of an account that has the `support` role now (read from
/// the database on every call, so taking the role away takes effect at once).
pub struct Staff(pub Caller);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = api_caller(parts, state, scope::SUPPORT).await?;
        if caller.user.role != Role::Support {
            return Err(ApiError::Forbidden(
                "the support API is only for accounts with the support role",
            ));
        }
        Ok(Staff(caller))
    }
}

/// Query parameters, with a 400 in the API's error format when they do not parse or hold a
/// control character.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(name) = parts.uri.query().and_then(|q| control_in(q.as_bytes())) {
            return Err(ApiError::invalid_request(format!(
                "the query parameter {name} contains a control character"
            )));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid_request(e.body_text()))
    }
}

/// A path segment (an account or session id), with a 400 in the API's error format when it
/// does not decode or holds a control character.
pub struct ApiPath(pub String);

impl FromRequestParts<AppState> for ApiPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_request(e.body_text()))?;
        if has_control(&id) {
            return Err(ApiError::invalid_request(
                "the id in the path contains a control character",
            ));
        }
        Ok(ApiPath(id))
    }
}

/// A JSON body, with a 400 in the API's error format when it does not parse.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(|e| ApiError::invalid_request(e.body_text()))
    }
}

/// `limit` and `offset` for lists.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// At most this many items (1–200, default 50).
    pub limit: Option<i64>,
    /// Skip this many items (default 0).
    pub offset: Option<i64>,
}

/// A list's page size: the asked-for `limit` within 1–200, 50 if none.
pub fn page_limit(limit: Option<i64>) -> i64 {
    Paging {
        limit,
        offset: None,
    }
    .limit()
}

impl Paging {
    pub fn limit(self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, 200)
    }

    pub fn offset(self) -> i64 {
        self.offset.unwrap_or(0).max(0)
    }

    /// The offset of the next page, if `returned` filled this one.
    pub fn next(self, returned: usize, total: Option<usize>) -> Option<i64> {
        let next = self.offset().saturating_add(returned as i64);
        let full = returned as i64 == self.limit();
        match total {
            Some(total) => (next < total as i64).then_some(next),
            None => full.then_some(next),
        }
    }
}

/// A staff member's reason, checked: every staff action needs one for the audit log.
pub fn required_reason(body: ReasonBody) -> Result<String, ApiError> {
    body.checked().map_err(ApiError::invalid_request)
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey account and support API",
        description = "Sessions, devices, refresh-token families, suspicion signals and the audit log. \
                       Every call needs an access token for this API (its `aud` names `/api/v1`), as `Authorization: Bearer`, or for a key-bound token \
                       as `Authorization: DPoP` with a DPoP proof (RFC 9449). `/me` calls need the `account` scope; `/admin` calls need the \
                       `support` scope and an account with the support role. Both scopes are granted only to first-party clients."
    ),
    modifiers(&BearerAuth),
    components(schemas(ApiErrorBody)),
    tags(
        (name = "account", description = "The signed-in user's own sessions and events"),
        (name = "support", description = "Support staff: every call is audited")
    )
)]
struct ApiDoc;

/// Every query string the account and support APIs read, parsed as their handlers parse it
/// (for the fuzz targets, `crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) fn parse_queries(uri: &axum::http::Uri) {
    fn parsed<T: DeserializeOwned>(uri: &axum::http::Uri) -> Option<T> {
        if uri.query().and_then(|q| control_in(q.as_bytes())).is_some() {
            return None;
        }
        Query::<T>::try_from_uri(uri).ok().map(|Query(q)| q)
    }
    if let Some(q) = parsed::<latchkey_proto::SessionQuery>(uri) {
        let _ = me::session_page(Vec::new(), &q, None);
    }
    if let Some(q) = parsed::<latchkey_proto::ChainQuery>(uri) {
        assert!((1..=200).contains(&me::chain_limit(&q)));
    }
    if let Some(q) = parsed::<latchkey_proto::EventQuery>(uri) {
        let _ = me::parse_cursor(q.before.as_deref());
        assert!((1..=200).contains(&page_limit(q.limit)));
    }
    if let Some(q) = parsed::<latchkey_proto::AdminEventQuery>(uri) {
        let _ = admin::parse_time("since", q.since.as_deref());
        let _ = me::parse_cursor(q.before.as_deref());
    }
    if let Some(q) = parsed::<latchkey_proto::AuditQuery>(uri) {
        let _ = admin::parse_time("since", q.since.as_deref());
        let _ = admin::parse_time("until", q.until.as_deref());
    }
    if let Some(q) = parsed::<latchkey_proto::UserQuery>(uri) {
        let paging = Paging {
            limit: q.limit,
            offset: q.offset,
        };
        assert!(paging.offset() >= 0 && (1..=200).contains(&paging.limit()));
        let _ = paging.next(1, Some(2));
    }
}

/// The API routes, and the OpenAPI document generated from the same handlers.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::profile))
        .routes(routes!(me::list_sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(me::revoke_others))
        .routes(routes!(me::family))
        .routes(routes!(me::acknowledge))
        .routes(routes!(me::events))
        .routes(routes!(admin::search_users))
        .routes(routes!(admin::user_sessions))
        .routes(routes!(admin::session_family))
        .routes(routes!(admin::events))
        .routes(routes!(admin::revoke_session))
        .routes(routes!(admin::revoke_all))
        .routes(routes!(admin::audit_log))
        .split_for_parts()
}
