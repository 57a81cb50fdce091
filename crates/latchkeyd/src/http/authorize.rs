//! The authorization endpoint and its sign-in form (RFC 6749 §4.1, RFC 7636, RFC 9207).
//!
//! Until client_id and redirect_uri are known good, errors are shown as a page and never
//! redirected (an open redirector would hand codes to strangers); after that they go back to
//! the client with `error`, `state` and `iss`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use super::error::{html_response, page_csp, PageError};
use super::origin::RequestOrigin;
use super::params::Params;
use crate::clock::secs;
use crate::limit::AddressKey;
use crate::metrics::Metrics;
use crate::scope;
use crate::secret::{new_id, new_token, token_hash, TokenKind};
use crate::server::AppState;
use crate::service::signin::{self, SignIn, SignInContext};
use crate::store::auth_requests::{self, AuthRequest, DeviceInfo};
use crate::store::clients::{Client, GrantType};
use crate::store::throttle::{Limited, Throttled};
use crate::store::Origin;

const BROWSER_COOKIE: &str = "lk_browser";

pub(crate) struct ScopeLine {
    pub(crate) text: &'static str,
    /// Powers over other people's accounts: shown apart, so nobody grants them unawares.
    pub(crate) staff: bool,
}

/// What each scope asked for lets the app do, in words; `elsewhere` when the app runs on
/// another device than the browser's (a sign-in with a code).
pub(crate) fn scope_lines(requested: &str, elsewhere: bool) -> Vec<ScopeLine> {
    scope::USER
        .iter()
        .filter(|s| scope::contains(requested, s))
        .map(|s| ScopeLine {
            text: match *s {
                scope::OPENID => "Confirm who you are",
                scope::PROFILE => "See your name",
                scope::EMAIL => "See your email address",
                scope::ACCOUNT => "See and sign out your devices and sessions",
                scope::SUPPORT => {
                    "If your account is a support-staff account: find any account, see its devices, sessions and security events, sign them out, and read the audit log"
                }
                _ if elsewhere => "Stay signed in on that device until you sign out or revoke it",
                _ => "Stay signed in on this device until you sign out or revoke it",
            },
            staff: *s == scope::SUPPORT,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    app_name: &'a str,
    device: &'a DeviceInfo,
    site: String,
    return_to: String,
    scopes: Vec<ScopeLine>,
    request_id: &'a str,
    csrf_token: &'a str,
    email: &'a str,
    error: Option<String>,
}

pub(crate) fn site_of(issuer: &str) -> String {
    Url::parse(issuer)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| issuer.to_string())
}

/// Where the browser goes after sign-in, in words a person can check.
pub(crate) fn return_to(redirect_uri: &str) -> String {
    match Url::parse(redirect_uri) {
        Ok(u)
            if matches!(
                u.host_str(),
                Some("127.0.0.1") | Some("[::1]") | Some("localhost")
            ) =>
        {
            "the app on this computer".into()
        }
        Ok(u) => u
            .host_str()
            .map(str::to_string)
            .unwrap_or_else(|| u.scheme().to_string()),
        Err(_) => redirect_uri.to_string(),
    }
}

/// Client-supplied device text: printable, trimmed, at most 100 characters.
pub(crate) fn device_text(value: Option<&str>) -> Option<String> {
    let cleaned: String = value?
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
        .trim()
        .to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => PageError::internal().into_response(),
    }
}

fn redirect_error(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    code: &str,
    description: &str,
) -> Response {
    let mut pairs = vec![("error", code), ("error_description", description)];
    if let Some(s) = client_state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    redirect_with(redirect_uri, &pairs)
}

pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where the sign-in form may post: here, and (browsers apply `form-action` to the redirect
/// that follows a post) the app it returns to. CSP has no syntax for IPv6 literals, so an app
/// on `[::1]` widens it to plain http; the redirect itself is checked against the app's
/// registration either way.
pub(crate) fn form_action(redirect_uri: &str) -> String {
    let target = match Url::parse(redirect_uri) {
        Ok(u) => match (u.scheme(), u.host()) {
            ("http" | "https", Some(url::Host::Ipv6(_))) => format!("{}:", u.scheme()),
            ("http" | "https", Some(_)) => u.origin().ascii_serialization(),
            (scheme, _) => format!("{scheme}:"),
        },
        Err(_) => String::new(),
    };
    format!("'self' {target}").trim_end().to_string()
}

pub(crate) fn page(
    status: StatusCode,
    page: &impl Template,
    set_cookie: Option<String>,
    redirect_uri: &str,
) -> Response {
    let mut res = html_response(status, page);
    let headers = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&page_csp(&form_action(redirect_uri))) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    res
}

/// Checks the client and its redirect URI; failures here are pages, never redirects.
async fn client_and_redirect(
    state: &AppState,
    params: &Params,
) -> Result<(Arc<Client>, String), PageError> {
    let bad = |msg: &str| {
        PageError::new(StatusCode::BAD_REQUEST, "This sign-in link is not valid", msg)
            .with_hint("Go back to the app you were signing in to and start again. If it keeps happening, the app is misconfigured.")
    };
    let client_id = params.get("client_id").ok_or_else(|| {
        bad("The request does not say which app is asking (client_id is missing).")
    })?;
    let client = state
        .client(client_id)
        .await?
        .ok_or_else(|| bad("The app asking to sign in is not registered with this server."))?;
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| {
        bad("The request does not say where to return after sign-in (redirect_uri is missing).")
    })?;
    if !client.may(GrantType::AuthorizationCode) {
        return Err(bad(
            "This app is a service: it is not registered to sign people in.",
        ));
    }
    if !client.redirect_uri_allowed(redirect_uri) {
        return Err(bad("The address to return to after sign-in is not registered for this app, so Latchkey will not send you there."));
    }
    Ok((client, redirect_uri.to_string()))
}

/// Counts a request that writes a sign-in in progress (a form, a device's request) against its
/// address's limit; how long to wait (ms) if it is over, decided before any database work.
pub(crate) fn charge_limit(state: &AppState, origin: &Origin) -> Option<i64> {
    let limiter = state.limits.authorize.as_ref()?;
    let key = origin.ip.as_deref().and_then(AddressKey::parse)?;
    let wait = limiter.charge(key, state.now()).err()?;
    Metrics::outcome(&state.metrics.rate_limited, "authorize");
    Some(wait)
}

/// Counts a request against the address's `/authorize` limit; the refusal page if it is over.
pub(crate) fn over_limit(state: &AppState, origin: &Origin) -> Option<Response> {
    let wait = charge_limit(state, origin)?;
    let secs = wait.div_euclid(1000) + 1;
    let mut res = PageError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in requests",
        format!(
            "Latchkey has had too many sign-in requests from your network address. For everyone's safety, try again in {}.",
            wait_words(wait)
        ),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(res)
}

/// What a sign-in form says to a wrong email address or password (never which of the two).
pub(crate) const WRONG_PASSWORD: &str =
    "That email address and password do not match an account. Check both and try again.";

/// What a sign-in form says when the sign-in limits hold an attempt back, and for how long.
pub(crate) fn throttled_message(throttled: &Throttled) -> String {
    let whose = match throttled.which {
        Limited::Account => "this account",
        Limited::Address => "your network address",
    };
    format!(
        "Too many failed sign-in attempts for {whose}. For your security, try again in {}.",
        wait_words(throttled.wait)
    )
}

/// A wait in words: seconds when short, minutes beyond two.
pub(crate) fn wait_words(ms: i64) -> String {
    match (ms + 999).div_euclid(1000) {
        ..=1 => "a second".into(),
        n @ 2..=119 => format!("{n} seconds"),
        _ => minutes(ms),
    }
}

pub async fn start(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = over_limit(&state, &origin) {
        return refused;
    }
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return PageError::new(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                e.to_string(),
            )
            .into_response()
        }
    };
    let (client, redirect_uri) = match client_and_redirect(&state, &params).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let client_state = params.get("state");
    let fail =
        |code: &str, desc: &str| redirect_error(&state, &redirect_uri, client_state, code, desc);

    if params.get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    // RFC 7636 §4.3: a missing method means plain, which OAuth 2.1 and Latchkey refuse.
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, _) => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            )
        }
        (Some(_), Some("S256")) => params.get("code_challenge").unwrap_or_default(),
        (Some(_), _) => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256; plain is not supported",
            )
        }
    };
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url-encoded SHA-256 hash (43 characters)",
        );
    }
    let granted = match granted_scope(&client, params.get("scope")) {
        Ok(g) => g,
        Err(description) => return fail("invalid_scope", &description),
    };
    if params
        .get("prompt")
        .is_some_and(|p| p.split_ascii_whitespace().any(|p| p == "none"))
    {
        return fail(
            "login_required",
            "this server always asks the user to sign in",
        );
    }
    if client_state.is_some_and(|s| s.len() > 2048)
        || params.get("nonce").is_some_and(|n| n.len() > 512)
    {
        return fail("invalid_request", "state or nonce is too long");
    }

    // RFC 9449 §10: the thumbprint of the key the client will prove at the token endpoint.
    let dpop_jkt = params.get("dpop_jkt");
    if dpop_jkt.is_some_and(|j| !crate::dpop::is_thumbprint(j)) {
        return fail(
            "invalid_request",
            "dpop_jkt must be a base64url-encoded SHA-256 JWK thumbprint (43 characters)",
        );
    }

    let (browser, set_cookie) = browser_cookie(&state, &headers, "/authorize");
    let csrf = new_token(TokenKind::Csrf);
    let now = state.now();
    let request = AuthRequest {
        id: new_id(),
        browser_hash: token_hash(&browser),
        csrf_hash: token_hash(csrf.expose()),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope: granted,
        state: client_state.map(str::to_string),
        nonce: params.get("nonce").map(str::to_string),
        code_challenge: challenge.to_string(),
        dpop_jkt: dpop_jkt.map(str::to_string),
        device: DeviceInfo {
            name: device_text(params.get("device_name")),
            platform: device_text(params.get("device_platform")),
            app_version: device_text(params.get("app_version")),
        },
        expires_at: now + secs(state.settings.signin.form_ttl_secs),
    };
    if let Err(e) = auth_requests::create_auth_request(&state.db, &request, now).await {
        return PageError::from(e).into_response();
    }
    let view = SignInPage {
        app_name: &client.name,
        device: &request.device,
        site: site_of(&state.issuer),
        return_to: return_to(&redirect_uri),
        scopes: scope_lines(&request.scope, false),
        request_id: &request.id,
        csrf_token: csrf.expose(),
        email: "",
        error: None,
    };
    page(StatusCode::OK, &view, set_cookie, &redirect_uri)
}

/// The scope a sign-in to `client` gets for what it asked (`openid` when it asked for none):
/// known user scopes it is registered for, each once; else why not, for `invalid_scope`.
pub(crate) fn granted_scope(client: &Client, requested: Option<&str>) -> Result<String, String> {
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.unwrap_or(scope::OPENID).split_ascii_whitespace() {
        if !scope::is_known(s) {
            return Err(format!("unknown scope {s:?}"));
        }
        if scope::is_service(s) {
            return Err(format!("the {s} scope is for a service account's own token (client_credentials), not a sign-in"));
        }
        // Every client gets only what it was registered for.
        if !client.allows(s) {
            return Err(format!("this app is not registered for the {s} scope"));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    if granted.is_empty() {
        return Err("the scope is empty".into());
    }
    Ok(granted.join(" "))
}

/// The browser's own random id, from its cookie for `path`; a new one (and the cookie that
/// sets it) if it has none. A form is accepted only from the browser it was shown to.
pub(crate) fn browser_cookie(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
) -> (String, Option<String>) {
    let known = cookie_value(headers, BROWSER_COOKIE)
        .filter(|v| v.starts_with(TokenKind::Csrf.prefix()) && v.len() < 100);
    if let Some(b) = known {
        return (b.to_string(), None);
    }
    let b = new_token(TokenKind::Csrf).into_inner();
    let secure = if state.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{BROWSER_COOKIE}={b}; Path={path}; HttpOnly; SameSite=Lax; Max-Age=86400{secure}");
    (b, Some(cookie))
}

/// Is this the browser the form was shown to, and its token?
pub(crate) fn same_browser(
    headers: &HeaderMap,
    csrf: &str,
    browser_hash: &[u8],
    csrf_hash: &[u8],
) -> bool {
    cookie_value(headers, BROWSER_COOKIE).is_some_and(|b| token_hash(b) == browser_hash)
        && token_hash(csrf) == csrf_hash
}

fn minutes(ms: i64) -> String {
    let m = (ms + 59_999) / 60_000;
    if m <= 1 {
        "a minute".into()
    } else {
        format!("{m} minutes")
    }
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
    match submit_inner(&state, &origin, &headers, &body).await {
        Ok(res) | Err(res) => res,
    }
}

async fn submit_inner(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let expired = || {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This sign-in form has expired",
            "Sign-in forms are valid for a limited time and only once.",
        )
        .with_hint("Go back to the app and start signing in again.")
        .into_response()
    };
    let form = Params::parse(body).map_err(|e| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This form could not be read",
            e.to_string(),
        )
        .into_response()
    })?;
    let request_id = form.get("request").ok_or_else(expired)?;
    let csrf = form.get("csrf_token").ok_or_else(expired)?;
    let now = state.now();
    let request = auth_requests::find_auth_request(&state.db, request_id)
        .await
        .map_err(|e| PageError::from(e).into_response())?
        .filter(|r| r.expires_at > now)
        .ok_or_else(expired)?;
    if !same_browser(headers, csrf, &request.browser_hash, &request.csrf_hash) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This sign-in form was not opened in this browser",
            "For your safety, Latchkey only accepts a sign-in form in the browser that opened it.",
        )
        .with_hint("Go back to the app and start signing in again.")
        .into_response());
    }

    if form.get("action") == Some("cancel") {
        auth_requests::delete_auth_request(&state.db, &request.id)
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        return Ok(redirect_error(
            state,
            &request.redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "the user cancelled the sign-in",
        ));
    }

    let client = state
        .client(&request.client_id)
        .await
        .map_err(|e| PageError::from(e).into_response())?
        .ok_or_else(expired)?;
    let email = form.get("username").unwrap_or_default().trim();
    let rerender = |status: StatusCode, message: String| {
        let view = SignInPage {
            app_name: &client.name,
            device: &request.device,
            site: site_of(&state.issuer),
            return_to: return_to(&request.redirect_uri),
            scopes: scope_lines(&request.scope, false),
            request_id: &request.id,
            csrf_token: csrf,
            email,
            error: Some(message),
        };
        page(status, &view, None, &request.redirect_uri)
    };
    let Some(password) = form.get("password").filter(|_| !email.is_empty()) else {
        return Err(rerender(
            StatusCode::BAD_REQUEST,
            "Enter your email address and your password.".into(),
        ));
    };

    let internal = |e| PageError::from(e).into_response();
    let cx = SignInContext {
        db: &state.db,
        policy: &state.settings.signin,
        tokens: &state.settings.tokens,
        password_checks: &state.password_checks,
    };
    let code = match signin::sign_in(&cx, &request, email, password, origin, now)
        .await
        .map_err(internal)?
    {
        SignIn::Issued(code) => code,
        SignIn::Throttled(throttled) => {
            Metrics::outcome(&state.metrics.signins, "throttled");
            return Err(rerender(
                StatusCode::TOO_MANY_REQUESTS,
                throttled_message(&throttled),
            ));
        }
        SignIn::Refused => {
            Metrics::outcome(&state.metrics.signins, "failed");
            return Err(rerender(StatusCode::UNAUTHORIZED, WRONG_PASSWORD.into()));
        }
        SignIn::Gone => return Err(expired()),
    };
    Metrics::outcome(&state.metrics.signins, "succeeded");
    let mut pairs = vec![("code", code.expose().as_str())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    Ok(redirect_with(&request.redirect_uri, &pairs))
}

#[cfg(test)]
mod tests {
    use super::form_action;

    #[test]
    fn the_form_may_post_here_and_to_the_app_it_returns_to() {
        assert_eq!(
            form_action("http://127.0.0.1:53124/callback"),
            "'self' http://127.0.0.1:53124"
        );
        assert_eq!(
            form_action("https://app.example.com/cb?x=1"),
            "'self' https://app.example.com"
        );
        assert_eq!(form_action("http://[::1]:8080/callback"), "'self' http:");
        assert_eq!(
            form_action("com.example.app:/cb"),
            "'self' com.example.app:"
        );
    }
}
