//! latchkeyd's account API: the user's sessions and families, revocation. Answers are JSON
//! values as documented at the server's `/openapi.json`.

use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
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
                let proof = key.proof(method, url, Some(token), nonce.as_deref());
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

    /// The URL of an account-API path for this access's server, if it is a latchkeyd.
    fn account_api_url(access: &Access, path: &str) -> Result<String> {
        let base = access.profile.metadata.latchkey_account_api.as_deref().ok_or_else(|| {
            Error::Unsupported(format!(
                "{} has no Latchkey account API: sessions and token families are a latchkeyd feature",
                access.profile.issuer
            ))
        })?;
        Ok(format!("{}{path}", base.trim_end_matches('/')))
    }

    /// One account-API call with a fresh access token.
    pub async fn api(
        &self,
        account: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let access = self.access(account, false).await?;
        let url = Self::account_api_url(&access, path)?;
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
        let value: Value = res.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error_description"]
            .as_str()
            .unwrap_or("the server refused the request")
            .to_string();
        Err(match status {
            // RFC 9470: the session is fine, the action needs a fresher sign-in.
            StatusCode::UNAUTHORIZED if value["error"] == "insufficient_user_authentication" => {
                Error::Refused(message)
            }
            StatusCode::UNAUTHORIZED => Error::SignedOut(format!(
                "the server no longer accepts this session: {message}"
            )),
            StatusCode::FORBIDDEN if value["error"] == "insufficient_scope" => Error::Refused(
                format!("{message}; sign in again with `latchkey login` to grant it"),
            ),
            s if s.is_client_error() => Error::Refused(message),
            _ => Error::Server(format!("the server failed ({status}): {message}")),
        })
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

    /// The account's sessions grouped by device (`GET /me/sessions`).
    pub async fn sessions(&self, account: Option<&str>, query: &str) -> Result<Value> {
        self.api(account, Method::GET, &format!("/me/sessions{query}"), None)
            .await
    }

    /// The rotation chain of one session's family.
    pub async fn family(&self, account: Option<&str>, session: &str) -> Result<Value> {
        let path = format!("/me/sessions/{}/family", encode(session));
        self.api(account, Method::GET, &path, None).await
    }

    pub async fn revoke_session(&self, account: Option<&str>, session: &str) -> Result<Value> {
        let path = format!("/me/sessions/{}", encode(session));
        self.api(account, Method::DELETE, &path, None).await
    }

    pub async fn revoke_others(&self, account: Option<&str>) -> Result<Value> {
        self.api(account, Method::POST, "/me/sessions/revoke-others", None)
            .await
    }

    pub async fn acknowledge(&self, account: Option<&str>, session: &str) -> Result<Value> {
        let path = format!("/me/sessions/{}/acknowledge", encode(session));
        self.api(account, Method::POST, &path, None).await
    }
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// One Server-Sent Event of the account's live stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The event kind (`session_revoked`, `reuse_detected`, …, or `token_expired`).
    pub kind: String,
    pub data: Value,
}

/// The account's live security events (`GET /me/events` as `text/event-stream`).
pub struct EventStream {
    res: reqwest::Response,
    buf: String,
}

impl Latchkey {
    pub async fn events(&self, account: Option<&str>) -> Result<EventStream> {
        let access = self.access(account, false).await?;
        let url = Self::account_api_url(&access, "/me/events")?;
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
                let (mut kind, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Ok(Some(StreamEvent { kind, data }));
            }
            match self.res.chunk().await? {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return Ok(None),
            }
        }
    }
}
