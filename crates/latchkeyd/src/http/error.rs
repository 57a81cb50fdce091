//! Where errors become HTTP responses: RFC 6749 JSON on the OAuth endpoints, an HTML page in the
//! browser, and a bare 500 (with the cause logged, never sent) for internal failures.

use std::borrow::Cow;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::keys::KeyError;
use crate::store::StoreError;
use crate::tokens::TokenError;

/// An OAuth error response (RFC 6749 §5.2, RFC 6750 §3 for bearer-token resources).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    challenge: Option<String>,
    /// A fresh DPoP server nonce for the client's next proof (`DPoP-Nonce`).
    dpop_nonce: Option<String>,
    /// Seconds until a rate-limited client may try again (`Retry-After`).
    retry_after: Option<i64>,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            challenge: None,
            dpop_nonce: None,
            retry_after: None,
        }
    }

    /// 429: too many failed requests from the client's address. RFC 6749 has no code for a
    /// rate limit; `temporarily_unavailable` (§4.1.2.1) says "try again later", and
    /// `Retry-After` says when.
    pub fn rate_limited(wait_ms: i64) -> Self {
        let secs = (wait_ms + 999).div_euclid(1000).max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            format!("too many failed requests from your network address: try again in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// Does this refusal count against the client's address (see `limit`)? Client errors do,
    /// except the nonce round trip that DPoP asks of honest clients and the answer to a
    /// device's poll while its sign-in waits (RFC 8628 §3.5; a poll too soon, `slow_down`,
    /// counts: it is a client misbehaving).
    pub fn counts_as_failure(&self) -> bool {
        self.status.is_client_error()
            && self.status != StatusCode::TOO_MANY_REQUESTS
            && !matches!(self.code, "use_dpop_nonce" | "authorization_pending")
    }

    /// RFC 9449 §7.1: a 401 from a resource, challenging with the DPoP scheme.
    pub fn dpop_challenge(code: &'static str, description: &'static str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, description);
        e.challenge = Some(format!(
            "DPoP algs=\"{}\", error=\"{code}\", error_description=\"{description}\"",
            crate::dpop::ALGS.join(" ")
        ));
        e
    }

    pub fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }

    /// 400 invalid_request: missing, repeated or malformed parameters.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 400 invalid_grant: the code or refresh token is not (or no longer) good.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 401 invalid_client, with a Basic challenge when the client tried Basic authentication.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>, basic: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if basic {
            e.challenge = Some("Basic realm=\"latchkey\"".into());
        }
        e
    }

    /// 401 invalid_token for a bearer-protected resource (RFC 6750 §3.1).
    pub fn invalid_token(description: &'static str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
        e.challenge = Some(format!(
            "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"{description}\""
        ));
        e
    }

    /// 401 insufficient_user_authentication (RFC 9470 §3): this needs a sign-in no older than
    /// `max_age` seconds.
    pub fn insufficient_user_authentication(max_age: u64, description: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "insufficient_user_authentication",
            description,
        );
        e.challenge = Some(format!(
            "Bearer realm=\"latchkey\", error=\"insufficient_user_authentication\", error_description=\"{description}\", max_age={max_age}"
        ));
        e
    }

    /// 401 without an error code: no credentials were presented at all (RFC 6750 §3.1).
    pub fn missing_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "an access token is required",
        );
        e.challenge = Some(format!(
            "Bearer realm=\"latchkey\", DPoP algs=\"{}\"",
            crate::dpop::ALGS.join(" ")
        ));
        e
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request; it has been logged",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = axum::Json(OAuthErrorBody {
            error: self.code,
            error_description: &self.description,
        });
        let mut res = (self.status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(nonce) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert("dpop-nonce", nonce);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for OAuthError {
            fn from(e: $t) -> Self {
                tracing::error!(error = %e, "internal error");
                OAuthError::server_error()
            }
        }
    )*};
}
internal_from!(StoreError, KeyError, TokenError);

/// A page shown in the user's browser when something is wrong and we must not redirect.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub hint: Option<String>,
}

pub struct PageError {
    pub status: StatusCode,
    pub page: ErrorPage,
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            page: ErrorPage {
                title: title.into(),
                message: message.into(),
                hint: None,
            },
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.page.hint = Some(hint.into());
        self
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Latchkey could not complete this step. Nothing was changed; please try again from the app.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        html_response(self.status, &self.page)
    }
}

/// The Content-Security-Policy of every page latchkeyd shows: its own stylesheet and nothing
/// else, never framed (clickjacking), forms posted only where `form_action` allows.
pub fn page_csp(form_action: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
         frame-ancestors 'none'; form-action {form_action}"
    )
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "internal error on a browser page");
        PageError::internal()
    }
}

/// A page, with the headers every page carries: no caching, a strict CSP (forms may post
/// nowhere; the sign-in page widens that for itself), never in a frame.
pub fn html_response(status: StatusCode, page: &impl Template) -> Response {
    let mut res = match page.render() {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    let headers = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&page_csp("'none'")) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
