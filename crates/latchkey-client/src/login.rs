//! The OAuth side: the authorization request (RFC 8252 loopback + PKCE S256 + `state`), the
//! code exchange, refresh and revocation, all through the `oauth2` crate.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, EndpointMaybeSet, EndpointNotSet, EndpointSet, PkceCodeChallenge,
    RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope,
    StandardDeviceAuthorizationResponse, StandardRevocableToken, TokenResponse, TokenUrl,
};

use serde::Serialize;

use crate::browser::Browser;
use crate::clock::Clock;
use crate::discovery::Metadata;
use crate::dpop::{DeviceKey, NonceCache, ProvingClient};
use crate::loopback::Listener;
use crate::{Error, Result, Secret};

pub type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointSet>;

/// What the app says about the device, sent on the authorization request.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub platform: String,
    /// The app signing in, as its user knows it ("Latchkey Desktop"): named on the page the
    /// browser lands on, so the user knows where to go back to. It stays on this machine.
    pub app: String,
    pub app_version: String,
}

impl Device {
    /// This machine: its host name, its OS, this app and build.
    pub fn this_machine(app: &str, app_version: &str) -> Self {
        let name = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "this computer".into());
        Self {
            name,
            platform: std::env::consts::OS.into(),
            app: app.into(),
            app_version: app_version.into(),
        }
    }
}

fn bad_url(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Server(format!("the server's {what} is not a usable URL: {e}"))
}

pub fn oauth_client(
    meta: &Metadata,
    client_id: &str,
    redirect: Option<&str>,
) -> Result<OAuthClient> {
    let mut client = BasicClient::new(ClientId::new(client_id.into()))
        .set_auth_uri(
            AuthUrl::new(meta.authorization_endpoint.clone())
                .map_err(|e| bad_url("authorization endpoint", e))?,
        )
        .set_token_uri(
            TokenUrl::new(meta.token_endpoint.clone()).map_err(|e| bad_url("token endpoint", e))?,
        )
        .set_revocation_url_option(
            meta.revocation_endpoint
                .clone()
                .map(RevocationUrl::new)
                .transpose()
                .map_err(|e| bad_url("revocation endpoint", e))?,
        );
    if let Some(redirect) = redirect {
        client = client.set_redirect_uri(
            RedirectUrl::new(redirect.into()).map_err(|e| bad_url("redirect URI", e))?,
        );
    }
    Ok(client)
}

/// Tokens as they arrived, secrets wrapped.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Secret<String>,
    /// Seconds the access token lives, if the server said.
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<Secret<String>>,
    pub scope: Option<String>,
    /// The access token is bound to the device key (`token_type` DPoP, RFC 9449 §5).
    pub dpop_bound: bool,
}

impl From<BasicTokenResponse> for Tokens {
    fn from(t: BasicTokenResponse) -> Self {
        Tokens {
            dpop_bound: t.token_type().as_ref().eq_ignore_ascii_case("dpop"),
            access_token: Secret::new(t.access_token().secret().clone()),
            expires_in: t.expires_in(),
            refresh_token: t.refresh_token().map(|r| Secret::new(r.secret().clone())),
            scope: t
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// A refused grant is final (the session is over); anything else may be retried.
pub enum GrantError {
    Refused(String),
    Other(Error),
}

fn grant_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> GrantError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r.error_description().cloned().unwrap_or_default();
            match r.error() {
                BasicErrorResponseType::InvalidGrant => GrantError::Refused(description),
                other => GrantError::Other(Error::Server(format!(
                    "the server refused: {} {description}",
                    other.as_ref()
                ))),
            }
        }
        RequestTokenError::Request(e) => {
            GrantError::Other(Error::Server(format!("cannot reach the server: {e}")))
        }
        other => GrantError::Other(Error::Server(format!(
            "the server's answer was not understood: {other}"
        ))),
    }
}

/// The scopes to ask for: the wanted ones the server supports (all, if it does not say).
pub fn scopes_for(meta: &Metadata, wanted: &str) -> Vec<String> {
    wanted
        .split_ascii_whitespace()
        .filter(|s| {
            meta.scopes_supported
                .as_ref()
                .is_none_or(|supported| supported.iter().any(|x| x == s))
        })
        .map(str::to_string)
        .collect()
}

pub struct SignIn<'a> {
    pub meta: &'a Metadata,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub device: &'a Device,
    pub browser: &'a dyn Browser,
    pub timeout: Duration,
    /// The device key to bind the session to (`dpop_jkt` and a proof on the code exchange).
    pub key: Option<&'a DeviceKey>,
    pub nonces: &'a NonceCache,
    pub clock: &'a dyn Clock,
}

/// The whole browser step: listener, authorization URL, redirect, code exchange.
pub async fn sign_in(
    http: &reqwest::Client,
    s: SignIn<'_>,
    cancel: impl std::future::Future<Output = ()> + Send,
) -> Result<Tokens> {
    let listener = Listener::bind().await?;
    let client = oauth_client(s.meta, s.client_id, Some(&listener.redirect_uri))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(CsrfToken::new_random);
    if let Some(key) = s.key {
        // RFC 9449 §10: the code is bound to the key before the browser ever sees it.
        request = request.add_extra_param("dpop_jkt", key.thumbprint());
    }
    let (url, state) = request
        .add_scopes(scopes_for(s.meta, s.scope).into_iter().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("device_name", &s.device.name)
        .add_extra_param("device_platform", &s.device.platform)
        .add_extra_param("app_version", &s.device.app_version)
        .url();
    s.browser
        .open(url.as_str())
        .map_err(|e| Error::SignIn(format!("cannot open the browser ({e}); try --no-browser")))?;
    let redirect = listener
        .wait(state.secret(), &s.device.app, s.timeout, cancel)
        .await?;
    // RFC 9207: the answer must come from the server we asked, not a mix-up.
    match &redirect.iss {
        Some(iss) if iss.trim_end_matches('/') != s.meta.issuer.trim_end_matches('/') => {
            return Err(Error::SignIn(format!(
                "the sign-in answer came from {iss}, not {}",
                s.meta.issuer
            )));
        }
        None if s.meta.authorization_response_iss_parameter_supported => {
            return Err(Error::SignIn(
                "the sign-in answer did not say which server sent it".into(),
            ));
        }
        _ => {}
    }
    let tokens = client
        .exchange_code(AuthorizationCode::new(redirect.code.into_inner()))
        .set_pkce_verifier(verifier)
        .request_async(&ProvingClient {
            http,
            key: s.key,
            nonces: s.nonces,
            clock: s.clock,
        })
        .await
        .map_err(|e| match grant_error(e) {
            GrantError::Refused(d) => {
                Error::SignIn(format!("the server refused the sign-in code: {d}"))
            }
            GrantError::Other(e) => e,
        })?;
    Ok(tokens.into())
}

/// What the person signing in is shown: where to go, and the code to enter there.
#[derive(Debug, Clone, Serialize)]
pub struct CodeToEnter {
    pub user_code: String,
    pub verification_uri: String,
    /// The address with the code in it, for a QR code or a link; not every server sends one.
    pub verification_uri_complete: Option<String>,
    /// How long the code may be entered.
    pub expires_in: Duration,
}

pub struct SignInWithCode<'a> {
    pub meta: &'a Metadata,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub device: &'a Device,
    /// The device key to bind the session to (`dpop_jkt`, and a proof on every poll).
    pub key: Option<&'a DeviceKey>,
    pub nonces: &'a NonceCache,
    pub clock: &'a dyn Clock,
    /// Give up sooner than the code expires.
    pub timeout: Option<Duration>,
}

/// The device authorization grant (RFC 8628): asks for a code, hands it to `show`, then polls
/// at the server's interval (longer after each `slow_down`) until the sign-in is approved,
/// denied or expired, or `cancel` completes.
pub async fn sign_in_with_code(
    http: &reqwest::Client,
    s: SignInWithCode<'_>,
    show: impl FnOnce(&CodeToEnter),
    cancel: impl std::future::Future<Output = ()> + Send,
) -> Result<Tokens> {
    let endpoint = s.meta.device_authorization_endpoint.as_ref().ok_or_else(|| {
        Error::Unsupported(format!(
            "{} does not offer sign-in with a code (no device_authorization_endpoint): sign in through a browser instead",
            s.meta.issuer
        ))
    })?;
    let client = oauth_client(s.meta, s.client_id, None)?.set_device_authorization_url(
        DeviceAuthorizationUrl::new(endpoint.clone())
            .map_err(|e| bad_url("device authorization endpoint", e))?,
    );
    let proving = ProvingClient {
        http,
        key: s.key,
        nonces: s.nonces,
        clock: s.clock,
    };
    let mut request = client
        .exchange_device_code()
        .add_scopes(scopes_for(s.meta, s.scope).into_iter().map(Scope::new))
        .add_extra_param("device_name", &s.device.name)
        .add_extra_param("device_platform", &s.device.platform)
        .add_extra_param("app_version", &s.device.app_version);
    if let Some(key) = s.key {
        // As on the authorization request (RFC 9449 §10): only this key can redeem the code.
        request = request.add_extra_param("dpop_jkt", key.thumbprint());
    }
    let details: StandardDeviceAuthorizationResponse =
        request.request_async(http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => Error::SignIn(format!(
                "the server refused to start a sign-in with a code: {} {}",
                r.error().as_ref(),
                r.error_description().cloned().unwrap_or_default()
            )),
            RequestTokenError::Request(e) => Error::Server(format!("cannot reach the server: {e}")),
            other => Error::Server(format!("the server's answer was not understood: {other}")),
        })?;
    show(&CodeToEnter {
        user_code: details.user_code().secret().clone(),
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|u| u.secret().clone()),
        expires_in: details.expires_in(),
    });
    let poll = client.exchange_device_access_token(&details).request_async(
        &proving,
        tokio::time::sleep,
        s.timeout,
    );
    let tokens = tokio::select! {
        polled = poll => polled,
        () = cancel => return Err(Error::SignIn("cancelled".into())),
    };
    tokens.map(Tokens::from).map_err(|e| match e {
        RequestTokenError::ServerResponse(r) => Error::SignIn(match r.error() {
            DeviceCodeErrorResponseType::AccessDenied => {
                "the sign-in was denied in the browser".into()
            }
            DeviceCodeErrorResponseType::ExpiredToken => {
                "the code expired before anyone approved it: run the sign-in again for a new one"
                    .into()
            }
            other => format!(
                "the server refused the sign-in: {} {}",
                other.as_ref(),
                r.error_description().cloned().unwrap_or_default()
            ),
        }),
        RequestTokenError::Request(e) => Error::Server(format!("cannot reach the server: {e}")),
        other => Error::Server(format!("the server's answer was not understood: {other}")),
    })
}

/// The refresh grant, with a proof by the device key when the session is bound to one.
pub async fn refresh(
    http: &ProvingClient<'_>,
    meta: &Metadata,
    client_id: &str,
    refresh_token: &Secret<String>,
) -> std::result::Result<Tokens, GrantError> {
    let client = oauth_client(meta, client_id, None).map_err(GrantError::Other)?;
    let token = RefreshToken::new(refresh_token.expose().clone());
    client
        .exchange_refresh_token(&token)
        .request_async(http)
        .await
        .map(Tokens::from)
        .map_err(grant_error)
}

/// RFC 7009. Whether the server confirmed; `false` if it has no revocation endpoint (the
/// token is still deleted here).
pub async fn revoke(
    http: &reqwest::Client,
    meta: &Metadata,
    client_id: &str,
    refresh_token: &Secret<String>,
) -> Result<bool> {
    let Some(endpoint) = &meta.revocation_endpoint else {
        return Ok(false);
    };
    let url = url::Url::parse(endpoint).map_err(|e| bad_url("revocation endpoint", e))?;
    if url.scheme() == "https" {
        let client = oauth_client(meta, client_id, None)?;
        let token =
            StandardRevocableToken::RefreshToken(RefreshToken::new(refresh_token.expose().clone()));
        client
            .revoke_token(token)
            .map_err(|e| Error::Server(format!("cannot revoke: {e}")))?
            .request_async(http)
            .await
            .map_err(|e| Error::Server(format!("the server did not confirm the sign-out: {e}")))?;
        return Ok(true);
    }
    // oauth2 refuses plain-http revocation (RFC 7009 asks for TLS), which also rules out a
    // server on this machine's loopback, the one place plain http is sound (RFC 8252 §8.3).
    let loopback = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || url.host_str() == Some("localhost");
    if !loopback {
        return Err(Error::Server(format!(
            "refusing to send a token to {endpoint} over plain http"
        )));
    }
    let res = http
        .post(url)
        .form(&[
            ("token", refresh_token.expose().as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id),
        ])
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(Error::Server(format!(
            "the server did not confirm the sign-out ({})",
            res.status()
        )));
    }
    Ok(true)
}
