//! latchkeyd's account API (the user's sessions and families, revocation, live events) and its
//! support-staff API, answered in latchkey-proto's types: a field the server renames breaks
//! this crate's build, not a screen.

use latchkey_proto::{
    AdminEventQuery, ApiErrorBody, ApiErrorCode, AuditPage, AuditQuery, ChainQuery, EventList,
    EventQuery, Family, Profile, ReasonBody, Revoked, SecurityEvent, SessionId, SessionList,
    SessionQuery, SessionView, UserId, UserList, UserQuery, UserSessions,
};
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::client::Access;
use crate::dpop::DeviceKey;
use crate::{Error, Latchkey, Result, Secret};

/// What authorizes a request: the access token, and for a key-bound one the key that proves it.
#[derive(Clone, Copy)]
pub(crate) struct Credential<'a> {
    pub token: &'a Secret<String>,
    pub key: Option<&'a DeviceKey>,
}

impl Access {
    fn credential(&self) -> Credential<'_> {
        Credential {
            token: &self.token,
            key: self.key.as_ref(),
        }
    }
}

impl Latchkey {
    /// The headers that authorize one request: `Authorization: Bearer`, or for a key-bound
    /// token `Authorization: DPoP` and a fresh proof for exactly this method and URL.
    fn authorization(
        &self,
        credential: Credential<'_>,
        method: &str,
        url: &str,
    ) -> Vec<(&'static str, Secret<String>)> {
        let token = credential.token.expose();
        match credential.key {
            Some(key) => {
                let nonce = self.nonces().get(url);
                let proof = key.proof(
                    self.clock_now_secs(),
                    method,
                    url,
                    Some(token),
                    nonce.as_deref(),
                );
                vec![
                    ("Authorization", Secret::new(format!("DPoP {token}"))),
                    ("DPoP", Secret::new(proof)),
                ]
            }
            None => vec![("Authorization", Secret::new(format!("Bearer {token}")))],
        }
    }

    /// Sends one request with the access token: as Bearer, or for a key-bound token as
    /// `DPoP` with a fresh proof (RFC 9449 §7), once more with the server's nonce if it asks.
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        method: Method,
        url: &str,
        credential: Credential<'_>,
        body: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut retried = false;
        loop {
            let mut req = http.request(method.clone(), url);
            for (name, value) in self.authorization(credential, method.as_str(), url) {
                req = req.header(name, value.expose());
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            let res = req.send().await?;
            self.nonces().remember(url, res.headers());
            let asks_nonce = res.status() == StatusCode::UNAUTHORIZED
                && res
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("use_dpop_nonce"));
            if credential.key.is_some() && asks_nonce && !retried {
                retried = true;
                continue;
            }
            return Ok(res);
        }
    }

    /// The URL of an API path (with its query) for this access's server, if it is a
    /// latchkeyd.
    fn api_url(access: &Access, path: &str, query: &impl Serialize) -> Result<String> {
        let base = access.profile.metadata.latchkey_account_api.as_deref().ok_or_else(|| {
            Error::Unsupported(format!(
                "{} has no Latchkey account API: sessions and token families are a latchkeyd feature",
                access.profile.issuer
            ))
        })?;
        let query = serde_urlencoded::to_string(query)
            .map_err(|e| Error::Config(format!("cannot encode the query: {e}")))?;
        let base = base.trim_end_matches('/');
        Ok(match query.is_empty() {
            true => format!("{base}{path}"),
            false => format!("{base}{path}?{query}"),
        })
    }

    /// One API call with a fresh access token; the answer as the contract's type, or the
    /// server's error as an [`Error`] a person can act on.
    async fn call<T: DeserializeOwned>(
        &self,
        account: Option<&str>,
        method: Method,
        path: &str,
        query: &impl Serialize,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let access = self.access(account, false).await?;
        let url = Self::api_url(&access, path, query)?;
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        let res = self
            .send(
                self.http(),
                method,
                &url,
                access.credential(),
                body.as_ref(),
                None,
            )
            .await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::Server(format!(
                    "the server's answer to {path} does not match this version of Latchkey: {e}"
                ))
            });
        }
        Err(api_error(status, serde_json::from_slice(&bytes).ok()))
    }

    /// The headers that authorize one request with the account's access token: `Bearer`, or
    /// for a token bound to this device `DPoP` with a proof for exactly this method and URL.
    pub async fn request_headers(
        &self,
        account: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<Vec<(&'static str, Secret<String>)>> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Config(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || method.is_empty() {
            return Err(Error::Config(
                "give an HTTP method and an http(s) URL".into(),
            ));
        }
        let access = self.access(account, false).await?;
        Ok(self.authorization(access.credential(), method, url))
    }

    /// Who the signed-in account is (`GET /me`), with its role.
    pub async fn me(&self, account: Option<&str>) -> Result<Profile> {
        self.call(account, Method::GET, "/me", &NO_QUERY, NO_BODY)
            .await
    }

    /// The account's sessions grouped by device (`GET /me/sessions`).
    pub async fn sessions(
        &self,
        account: Option<&str>,
        query: &SessionQuery,
    ) -> Result<SessionList> {
        self.call(account, Method::GET, "/me/sessions", query, NO_BODY)
            .await
    }

    /// A page of the rotation chain of one of the account's sessions.
    pub async fn family(
        &self,
        account: Option<&str>,
        session: &SessionId,
        query: &ChainQuery,
    ) -> Result<Family> {
        let path = format!("/me/sessions/{}/family", encode(session));
        self.call(account, Method::GET, &path, query, NO_BODY).await
    }

    /// Revokes one of the account's sessions; the session as it now stands.
    pub async fn revoke_session(
        &self,
        account: Option<&str>,
        session: &SessionId,
    ) -> Result<SessionView> {
        let path = format!("/me/sessions/{}", encode(session));
        self.call(account, Method::DELETE, &path, &NO_QUERY, NO_BODY)
            .await
    }

    /// Signs out every other device of the account.
    pub async fn revoke_others(&self, account: Option<&str>) -> Result<Revoked> {
        let path = "/me/sessions/revoke-others";
        self.call(account, Method::POST, path, &NO_QUERY, NO_BODY)
            .await
    }

    /// "This was me": clears a session's signals.
    pub async fn acknowledge(
        &self,
        account: Option<&str>,
        session: &SessionId,
    ) -> Result<SessionView> {
        let path = format!("/me/sessions/{}/acknowledge", encode(session));
        self.call(account, Method::POST, &path, &NO_QUERY, NO_BODY)
            .await
    }

    /// A page of the account's past security events, newest first.
    pub async fn event_page(&self, account: Option<&str>, query: &EventQuery) -> Result<EventList> {
        self.call(account, Method::GET, "/me/events", query, NO_BODY)
            .await
    }
}

/// The support-staff API (`/admin/…`): the account must have the support role and have
/// signed in with the `support` scope. Every call leaves an audit record at the server.
impl Latchkey {
    pub async fn support_users(
        &self,
        account: Option<&str>,
        query: &UserQuery,
    ) -> Result<UserList> {
        self.call(account, Method::GET, "/admin/users", query, NO_BODY)
            .await
    }

    pub async fn support_user_sessions(
        &self,
        account: Option<&str>,
        user: &UserId,
        query: &SessionQuery,
    ) -> Result<UserSessions> {
        let path = format!("/admin/users/{}/sessions", encode(user));
        self.call(account, Method::GET, &path, query, NO_BODY).await
    }

    pub async fn support_family(
        &self,
        account: Option<&str>,
        session: &SessionId,
        query: &ChainQuery,
    ) -> Result<Family> {
        let path = format!("/admin/sessions/{}/family", encode(session));
        self.call(account, Method::GET, &path, query, NO_BODY).await
    }

    pub async fn support_events(
        &self,
        account: Option<&str>,
        query: &AdminEventQuery,
    ) -> Result<EventList> {
        self.call(account, Method::GET, "/admin/events", query, NO_BODY)
            .await
    }

    /// Revokes any account's session; the reason goes to the audit log.
    pub async fn support_revoke_session(
        &self,
        account: Option<&str>,
        session: &SessionId,
        reason: &ReasonBody,
    ) -> Result<SessionView> {
        let path = format!("/admin/sessions/{}/revoke", encode(session));
        self.call(account, Method::POST, &path, &NO_QUERY, Some(reason))
            .await
    }

    /// Revokes every session of an account; the reason goes to the audit log.
    pub async fn support_revoke_all(
        &self,
        account: Option<&str>,
        user: &UserId,
        reason: &ReasonBody,
    ) -> Result<Revoked> {
        let path = format!("/admin/users/{}/revoke-all", encode(user));
        self.call(account, Method::POST, &path, &NO_QUERY, Some(reason))
            .await
    }

    pub async fn support_audit(
        &self,
        account: Option<&str>,
        query: &AuditQuery,
    ) -> Result<AuditPage> {
        self.call(account, Method::GET, "/admin/audit", query, NO_BODY)
            .await
    }
}

/// A call without query parameters.
const NO_QUERY: [(&str, &str); 0] = [];
/// A call without a body.
const NO_BODY: Option<&()> = None;

/// The server's refusal, in words a person can act on.
fn api_error(status: StatusCode, body: Option<ApiErrorBody>) -> Error {
    let code = body.as_ref().map(|b| b.error);
    let message = body
        .map(|b| b.error_description)
        .unwrap_or_else(|| "the server refused the request".into());
    match (status, code) {
        // RFC 9470: the session is fine, the action needs a fresher sign-in.
        (_, Some(ApiErrorCode::InsufficientUserAuthentication)) => Error::Refused(message),
        (StatusCode::UNAUTHORIZED, _) => Error::SignedOut(format!(
            "the server no longer accepts this session: {message}"
        )),
        (_, Some(ApiErrorCode::InsufficientScope)) => Error::Refused(format!(
            "{message}; sign in again with `latchkey login` to grant it"
        )),
        (s, _) if s.is_client_error() => Error::Refused(message),
        (s, _) => Error::Server(format!("the server failed ({s}): {message}")),
    }
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// One Server-Sent Event of the account's live stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Something happened to one of the account's sessions.
    Security(Box<SecurityEvent>),
    /// The stream's access token expired; the server ends the stream after this.
    TokenExpired,
    /// The stream fell behind and skipped events: reload what is shown.
    Resync,
}

impl StreamEvent {
    /// One SSE event by its name; `None` for names this version does not know.
    fn parse(name: &str, data: &str) -> Option<Self> {
        match name {
            "token_expired" => Some(Self::TokenExpired),
            "resync" => Some(Self::Resync),
            _ => serde_json::from_str(data)
                .ok()
                .map(|e| Self::Security(Box::new(e))),
        }
    }
}

/// The account's live security events (`GET /me/events` as `text/event-stream`).
pub struct EventStream {
    res: reqwest::Response,
    buf: String,
}

impl Latchkey {
    pub async fn events(&self, account: Option<&str>) -> Result<EventStream> {
        let access = self.access(account, false).await?;
        let url = Self::api_url(&access, "/me/events", &NO_QUERY)?;
        // A stream lives until the access token expires; no overall timeout.
        let res = self
            .send(
                &reqwest::Client::new(),
                Method::GET,
                &url,
                access.credential(),
                None,
                Some("text/event-stream"),
            )
            .await?;
        match res.status() {
            s if s.is_success() => Ok(EventStream {
                res,
                buf: String::new(),
            }),
            StatusCode::UNAUTHORIZED => Err(Error::SignedOut(
                "the server no longer accepts this session".into(),
            )),
            s => Err(Error::Server(format!("the event stream answered {s}"))),
        }
    }
}

impl EventStream {
    /// The next event; `None` when the server ends the stream.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>> {
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..at + 2).collect();
                let (mut name, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                // Keep-alive comments carry no data; unknown names are a newer server's.
                if let Some(event) = (!data.is_empty())
                    .then(|| StreamEvent::parse(&name, &data))
                    .flatten()
                {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.res.chunk().await? {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return Ok(None),
            }
        }
    }
}
