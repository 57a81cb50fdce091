//! The account and support API's errors: `{"error", "error_description"}` with a stable code.
//! What is wrong with the access token (or the DPoP proof with it) is answered as every
//! protected resource of latchkeyd answers it, with the RFC 6750 / RFC 9449 / RFC 9470
//! challenge headers; everything else is the API's own.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use latchkey_proto::ApiErrorCode;

use super::ApiErrorBody;
use crate::http::error::OAuthError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// The access token or its proof: missing, invalid, expired, revoked, for another
    /// audience, without the scope, or a sign-in too old for the call.
    Access(OAuthError),
    /// 400 `invalid_request`: a parameter or body the API cannot take.
    InvalidRequest(Cow<'static, str>),
    /// 403 `forbidden`: the caller is known, and may not do this.
    Forbidden(&'static str),
    /// 404 `not_found`.
    NotFound(&'static str),
    /// 500: the cause is logged, never sent.
    Internal,
}

impl ApiError {
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(description.into())
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        Self::Access(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "internal error in the API");
        Self::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            Self::Access(e) => return e.into_response(),
            Self::InvalidRequest(d) => (StatusCode::BAD_REQUEST, ApiErrorCode::InvalidRequest, d),
            Self::Forbidden(d) => (StatusCode::FORBIDDEN, ApiErrorCode::Forbidden, d.into()),
            Self::NotFound(d) => (StatusCode::NOT_FOUND, ApiErrorCode::NotFound, d.into()),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiErrorCode::ServerError,
                "the server could not complete the request; it has been logged".into(),
            ),
        };
        let body = ApiErrorBody {
            error: code,
            error_description: description.into_owned(),
        };
        let mut res = (status, Json(body)).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
