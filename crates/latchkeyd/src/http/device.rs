//! The device authorization grant's endpoint and pages (RFC 8628): `/device_authorization`,
//! where a device asks for a code, and `/device`, where a person enters the code, signs in and
//! approves or denies. The device's polls are a grant at the token endpoint (`oauth.rs`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::authorize::{
    browser_cookie, charge_limit, device_text, granted_scope, over_limit, page, same_browser,
    scope_lines, site_of, throttled_message, ScopeLine, WRONG_PASSWORD,
};
use super::client_auth::authenticate;
use super::error::{OAuthError, PageError};
use super::oauth::{limited, no_store, registered_for};
use super::origin::RequestOrigin;
use super::params::{OAuthForm, Params};
use crate::clock::Millis;
use crate::metrics::Metrics;
use crate::scope;
use crate::secret::{display_user_code, new_token, normalize_user_code, token_hash, TokenKind};
use crate::server::AppState;
use crate::service::device::{self as service, Approval};
use crate::service::signin::SignInContext;
use crate::store::auth_requests::DeviceInfo;
use crate::store::clients::GrantType;
use crate::store::device::{self, NewRequest, Pending};
use crate::store::Origin;

/// RFC 8628 §3.2.
#[derive(Serialize)]
struct DeviceAuthorizationResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// RFC 8628 §3.1: a device asks for a code. Client authentication, scope and `dpop_jkt` are
/// checked as at `/authorize`, and each request counts against the same per-address limit (it
/// writes a sign-in in progress); failures are RFC 6749 JSON.
pub async fn authorize_device(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    if let Some(wait) = charge_limit(&state, &origin) {
        return Err(OAuthError::rate_limited(wait));
    }
    limited(
        &state,
        &origin,
        new_request(&state, &origin, &headers, &params),
    )
    .await
}

async fn new_request(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    registered_for(&client, GrantType::DeviceCode)?;
    let invalid_scope = |d: String| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", d);
    let asked = granted_scope(&client, params.get("scope")).map_err(invalid_scope)?;
    // RFC 8628 §5.4: a code can be sent to someone else to approve. Staff powers are never
    // granted that way: support staff sign in through a browser on their own computer.
    let scope: Vec<&str> = asked
        .split_ascii_whitespace()
        .filter(|s| *s != scope::SUPPORT)
        .collect();
    if scope.is_empty() {
        return Err(invalid_scope(
            "the support scope is not granted to a sign-in with a code: sign in through a browser"
                .into(),
        ));
    }
    let scope = scope.join(" ");
    let dpop_jkt = params.get("dpop_jkt");
    if dpop_jkt.is_some_and(|j| !crate::dpop::is_thumbprint(j)) {
        return Err(OAuthError::invalid_request(
            "dpop_jkt must be a base64url-encoded SHA-256 JWK thumbprint (43 characters)",
        ));
    }
    let device = DeviceInfo {
        name: device_text(params.get("device_name")),
        platform: device_text(params.get("device_platform")),
        app_version: device_text(params.get("app_version")),
    };
    let policy = &state.settings.signin;
    let issued = device::create(
        &state.db,
        &NewRequest {
            client_id: &client.client_id,
            scope: &scope,
            dpop_jkt,
            device: &device,
            origin,
            ttl_secs: policy.device_code_ttl_secs,
            interval_secs: policy.device_poll_interval_secs,
        },
        state.now(),
    )
    .await?;
    let verification_uri = format!("{}/device", state.issuer);
    Ok(no_store(Json(DeviceAuthorizationResponse {
        verification_uri_complete: format!("{verification_uri}?user_code={}", issued.user_code),
        verification_uri,
        device_code: issued.device_code.into_inner(),
        user_code: issued.user_code,
        expires_in: policy.device_code_ttl_secs,
        interval: policy.device_poll_interval_secs,
    })))
}

#[derive(Template)]
#[template(path = "device_code.html")]
struct CodePage<'a> {
    typed: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "device_approve.html")]
struct ApprovePage<'a> {
    app_name: &'a str,
    site: String,
    device: &'a DeviceInfo,
    device_ip: Option<&'a str>,
    asked_at: String,
    user_code: &'a str,
    scopes: Vec<ScopeLine>,
    request_id: &'a str,
    csrf_token: &'a str,
    email: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage<'a> {
    title: &'a str,
    message: String,
}

#[derive(Deserialize)]
pub struct CodeQuery {
    user_code: Option<String>,
}

/// The code entry page; from `verification_uri_complete` (the code in the query), straight
/// to the approval form.
pub async fn start(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Query(query): Query<CodeQuery>,
) -> Response {
    if let Some(refused) = over_limit(&state, &origin) {
        return refused;
    }
    match query.user_code.as_deref() {
        Some(typed) => enter_code(&state, &headers, typed).await,
        None => code_page(StatusCode::OK, "", None),
    }
}

fn code_page(status: StatusCode, typed: &str, error: Option<String>) -> Response {
    page(status, &CodePage { typed, error }, None, "")
}

/// A code typed (or carried in the link): the approval form for its request, or the entry
/// page again with what is wrong.
async fn enter_code(state: &AppState, headers: &HeaderMap, typed: &str) -> Response {
    let typed: String = typed.chars().filter(|c| !c.is_control()).take(20).collect();
    let Some(code) = normalize_user_code(&typed) else {
        return code_page(
            StatusCode::BAD_REQUEST,
            &typed,
            Some("A code is 8 letters, like BCDF-GHJK. Check the code on your device and type it again.".into()),
        );
    };
    let now = state.now();
    let pending = match device::pending_by_user_code(&state.db, &code, now).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return code_page(
                StatusCode::BAD_REQUEST,
                &typed,
                Some("That code is not valid: it may have expired or been used. Check the code on your device, or start again there for a new one.".into()),
            )
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    let (browser, set_cookie) = browser_cookie(state, headers, "/device");
    let csrf = new_token(TokenKind::Csrf);
    if let Err(e) = device::open_form(
        &state.db,
        &pending.id,
        &token_hash(&browser),
        &token_hash(csrf.expose()),
    )
    .await
    {
        return PageError::from(e).into_response();
    }
    let shown = display_user_code(&code);
    let form = Filled {
        user_code: &shown,
        csrf_token: csrf.expose(),
        email: "",
        error: None,
    };
    approve_page(state, &pending, form, StatusCode::OK, set_cookie, now).await
}

/// What the approval form carries from one showing to the next.
struct Filled<'a> {
    user_code: &'a str,
    csrf_token: &'a str,
    email: &'a str,
    error: Option<String>,
}

async fn approve_page(
    state: &AppState,
    pending: &Pending,
    form: Filled<'_>,
    status: StatusCode,
    set_cookie: Option<String>,
    now: Millis,
) -> Response {
    let client = match state.client(&pending.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return expired(),
        Err(e) => return PageError::from(e).into_response(),
    };
    let view = ApprovePage {
        app_name: &client.name,
        site: site_of(&state.issuer),
        device: &pending.device,
        device_ip: pending.ip.as_deref(),
        asked_at: asked_at(pending.created_at, now),
        user_code: form.user_code,
        scopes: scope_lines(&pending.scope, true),
        request_id: &pending.id,
        csrf_token: form.csrf_token,
        email: form.email,
        error: form.error,
    };
    page(status, &view, set_cookie, "")
}

/// When the device asked, for a person to match with what they did: "2 minutes ago (14:03 UTC)".
fn asked_at(at: Millis, now: Millis) -> String {
    let clock = time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
        .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
        .unwrap_or_default();
    match (now - at).div_euclid(60_000) {
        ..=0 => format!("just now ({clock})"),
        1 => format!("a minute ago ({clock})"),
        n => format!("{n} minutes ago ({clock})"),
    }
}

fn expired() -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "The code was used, denied, or is past its time.",
    )
    .with_hint("Start again on your device for a new code.")
    .into_response()
}

pub async fn submit(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = over_limit(&state, &origin) {
        return refused;
    }
    let form = match Params::parse(&body) {
        Ok(f) => f,
        Err(e) => {
            return PageError::new(
                StatusCode::BAD_REQUEST,
                "This form could not be read",
                e.to_string(),
            )
            .into_response()
        }
    };
    match form.get("action") {
        Some("approve") | Some("deny") => decide(&state, &origin, &headers, &form).await,
        _ => enter_code(&state, &headers, form.get("user_code").unwrap_or_default()).await,
    }
}

/// The approval form submitted: deny, or check the password and approve.
async fn decide(state: &AppState, origin: &Origin, headers: &HeaderMap, form: &Params) -> Response {
    let now = state.now();
    let (Some(id), Some(csrf)) = (form.get("request"), form.get("csrf_token")) else {
        return expired();
    };
    let pending = match device::pending(&state.db, id, now).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired(),
        Err(e) => return PageError::from(e).into_response(),
    };
    let ours = match (&pending.browser_hash, &pending.csrf_hash) {
        (Some(b), Some(c)) => same_browser(headers, csrf, b, c),
        _ => false,
    };
    if !ours {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "This form was not opened in this browser",
            "For your safety, Latchkey only accepts an approval in the browser that last entered the code.",
        )
        .with_hint("Enter the code from your device again.")
        .into_response();
    }
    let device_name = pending.device.name.as_deref().unwrap_or("the device");
    if form.get("action") == Some("deny") {
        match device::deny(&state.db, &pending.id).await {
            Ok(true) => {}
            Ok(false) => return expired(),
            Err(e) => return PageError::from(e).into_response(),
        }
        let done = DonePage {
            title: "Sign-in denied",
            message: format!("{device_name} will not be signed in to your account."),
        };
        return page(StatusCode::OK, &done, None, "");
    }

    let user_code = form.get("user_code").unwrap_or_default();
    let email = form.get("username").unwrap_or_default().trim();
    let again = |status: StatusCode, message: String| {
        let form = Filled {
            user_code,
            csrf_token: csrf,
            email,
            error: Some(message),
        };
        approve_page(state, &pending, form, status, None, now)
    };
    let Some(password) = form.get("password").filter(|_| !email.is_empty()) else {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your email address and your password.".into(),
        )
        .await;
    };
    let cx = SignInContext {
        db: &state.db,
        policy: &state.settings.signin,
        tokens: &state.settings.tokens,
        password_checks: &state.password_checks,
    };
    let approval = match service::approve(&cx, &pending, email, password, origin, now).await {
        Ok(a) => a,
        Err(e) => return PageError::from(e).into_response(),
    };
    match approval {
        Approval::Approved => {
            Metrics::outcome(&state.metrics.signins, "succeeded");
            let done = DonePage {
                title: "Your device is signed in",
                message: format!(
                    "{device_name} is now signed in to your account. Return to it to carry on."
                ),
            };
            page(StatusCode::OK, &done, None, "")
        }
        Approval::Throttled(throttled) => {
            Metrics::outcome(&state.metrics.signins, "throttled");
            again(StatusCode::TOO_MANY_REQUESTS, throttled_message(&throttled)).await
        }
        Approval::Refused { denied: false } => {
            Metrics::outcome(&state.metrics.signins, "failed");
            again(StatusCode::UNAUTHORIZED, WRONG_PASSWORD.into()).await
        }
        Approval::Refused { denied: true } => {
            Metrics::outcome(&state.metrics.signins, "failed");
            PageError::new(
                StatusCode::UNAUTHORIZED,
                "Too many wrong passwords for this code",
                "For your safety this code no longer works, and the device was told so.",
            )
            .with_hint("Start again on your device for a new code.")
            .into_response()
        }
        Approval::Gone => expired(),
    }
}
