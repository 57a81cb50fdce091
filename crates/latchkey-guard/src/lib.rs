//! Accept Latchkey's access tokens in a Rust API, and learn of their revocation within a second.
//!
//! A [`Guard`] checks access tokens offline: the RFC 9068 JWT against latchkeyd's JWKS (cached,
//! fetched again for an unknown `kid`, at most every [`JWKS_REFETCH`]), its issuer, expiry and
//! (if configured) audience, and for a DPoP-bound token the request's proof (RFC 9449 §7). It
//! also refuses at once any token whose session latchkeyd announced revoked: the guard is a
//! Shared Signals receiver, a service account that long-polls its own stream (RFC 8936) for
//! CAEP `session-revoked` events. If that feed has been down for longer than
//! [`GuardConfig::max_staleness`], the guard fails closed (503) unless told otherwise, and says
//! so in its logs and [`Guard::health`].
//!
//! The feed long-polls by default ([`Revocations::Poll`]): nothing to serve, and it works from
//! behind any firewall. With [`Revocations::Push`] latchkeyd posts each event to the API
//! (RFC 8935), which serves [`Guard::push_receiver`]; the guard asks for a verification event
//! every third of `max_staleness` to know the push still reaches it. [`Revocations::Introspect`]
//! keeps no feed and asks latchkeyd about every token (RFC 7662) instead, at the price of a
//! round trip per request.
//!
//! In axum, put the guard in the state (`FromRef`) and take a [`Principal`] in a handler.

mod feed;
mod introspect;
mod push;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

pub use verify::ALGS;

/// The fewest seconds between two fetches of the JWKS for an unknown `kid`: a flood of tokens
/// with made-up key ids must not become a flood of requests to latchkeyd.
pub const JWKS_REFETCH: Duration = Duration::from_secs(10);

/// How the guard learns that a session was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocations {
    /// Long-polls its stream at latchkeyd (RFC 8936).
    Poll,
    /// latchkeyd pushes each event (RFC 8935) to `url`, which must reach the API's
    /// [`Guard::push_receiver`] (https, or http on loopback where latchkeyd allows it).
    Push { url: String },
    /// No feed: each request's token is introspected at latchkeyd (RFC 7662). The service
    /// account must be registered for the `introspection` scope to see other clients' tokens.
    Introspect,
}

impl Revocations {
    fn name(&self) -> &'static str {
        match self {
            Revocations::Poll => "poll",
            Revocations::Push { .. } => "push",
            Revocations::Introspect => "introspect",
        }
    }
}

/// How a guard is set up.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// latchkeyd's issuer URL, as its tokens carry it.
    pub issuer: String,
    /// The API's service account: a confidential client registered for `client_credentials`
    /// with the `ssf` scope.
    pub client_id: String,
    pub client_secret: String,
    /// If set, a token must name this audience.
    pub audience: Option<String>,
    /// The API's own base URL as clients address it (scheme, host, port), for DPoP's `htu`;
    /// without it, `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// How long the revocation feed may be out of touch before the guard stops trusting its
    /// view of revocations.
    pub max_staleness: Duration,
    /// Refuse every token (503) while the feed is stale; if false, accept them on their JWT
    /// alone and log it.
    pub fail_closed: bool,
    /// How long a revoked session is remembered: at least the access tokens' lifetime.
    pub remember_revoked: Duration,
    /// The description of the guard's stream, by which it finds it again after a restart.
    pub stream_description: String,
    pub revocations: Revocations,
}

impl GuardConfig {
    pub fn new(issuer: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            audience: None,
            public_url: None,
            max_staleness: Duration::from_secs(60),
            fail_closed: true,
            remember_revoked: Duration::from_secs(24 * 3600),
            stream_description: "latchkey-guard".to_string(),
            revocations: Revocations::Poll,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot reach latchkeyd at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("latchkeyd answered {url} with {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("latchkeyd's answer from {url} is not what it should be: {why}")]
    Unexpected { url: String, why: String },
}

/// Who a request's token speaks for.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (`sub`), or the service account's client id for its own token.
    pub subject: String,
    pub client_id: String,
    pub scope: String,
    /// The user's session; none for a service account's token.
    pub session_id: Option<String>,
    /// The key the token is bound to (DPoP), if any.
    pub jkt: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }
}

/// Why a request is refused: an RFC 6750 / RFC 9449 challenge, or 503 while the revocation feed
/// is stale and the guard fails closed.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    /// `invalid_request`, `invalid_token`, `invalid_dpop_proof`, or `None` when no credentials
    /// came (RFC 6750 §3.1).
    pub error: Option<&'static str>,
    pub description: &'static str,
    /// Challenge with the DPoP scheme (the token is bound, or came as DPoP).
    pub dpop: bool,
}

impl Rejection {
    fn new(error: &'static str, description: &'static str, dpop: bool) -> Self {
        let status = if error == "invalid_request" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self {
            status,
            error: Some(error),
            description,
            dpop,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let challenge = match (self.error, self.dpop) {
            (None, _) => format!("Bearer, DPoP algs=\"{}\"", ALGS.join(" ")),
            (Some(e), false) => {
                format!(
                    "Bearer error=\"{e}\", error_description=\"{}\"",
                    self.description
                )
            }
            (Some(e), true) => format!(
                "DPoP algs=\"{}\", error=\"{e}\", error_description=\"{}\"",
                ALGS.join(" "),
                self.description
            ),
        };
        let body = json!({
            "error": self.error.unwrap_or("unauthorized"),
            "error_description": self.description,
        });
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status != StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}

/// What the revocation feed knows, for health checks and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// `poll`, `push` or `introspect` ([`Revocations`]).
    pub revocations: &'static str,
    /// The feed heard from latchkeyd within `max_staleness` (always, when introspecting).
    pub feed_current: bool,
    /// Seconds since the feed last heard from latchkeyd, if ever.
    pub seconds_since_contact: Option<f64>,
    /// Sessions known to be revoked.
    pub revoked_sessions: usize,
    /// Revocation events received since start.
    pub events_received: u64,
}

/// The guard: cheap to clone, one per API process.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    http: reqwest::Client,
    jwks_uri: String,
    keys: RwLock<verify::Keys>,
    /// Revoked sessions, with when the guard learned of each.
    revoked: RwLock<HashMap<String, Instant>>,
    /// DPoP proofs seen (jti → until when it would be accepted), against replay.
    proofs: Mutex<HashMap<String, i64>>,
    feed: Mutex<feed::State>,
    /// The `Authorization` header latchkeyd sends with each push, new at every start.
    push_authorization: Option<String>,
    introspection_endpoint: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    introspection_endpoint: String,
}

impl Guard {
    /// Discovers latchkeyd, fetches its keys, and starts the revocation feed on the current
    /// runtime. Fails if latchkeyd cannot be reached or the service account cannot sign in;
    /// later outages only make the feed stale.
    pub async fn start(config: GuardConfig) -> Result<Self, GuardError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| GuardError::Unreachable {
                url: config.issuer.clone(),
                source,
            })?;
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let discovery: Discovery = feed::get_json(&http, &url, None).await?;
        if discovery.issuer != config.issuer {
            return Err(GuardError::Unexpected {
                url,
                why: format!(
                    "it names issuer {:?}, not {:?}",
                    discovery.issuer, config.issuer
                ),
            });
        }
        let keys = match config.revocations {
            Revocations::Introspect => verify::Keys::none(),
            _ => verify::Keys::fetch(&http, &discovery.jwks_uri).await?,
        };
        let push_authorization = match &config.revocations {
            Revocations::Push { url } => {
                push::check_url(url)?;
                Some(push::new_authorization())
            }
            _ => None,
        };
        let feed = feed::State::new(discovery.token_endpoint);
        let guard = Guard {
            inner: Arc::new(Inner {
                config,
                http,
                jwks_uri: discovery.jwks_uri,
                keys: RwLock::new(keys),
                revoked: RwLock::new(HashMap::new()),
                proofs: Mutex::new(HashMap::new()),
                feed: Mutex::new(feed),
                push_authorization,
                introspection_endpoint: discovery.introspection_endpoint,
            }),
        };
        match guard.inner.config.revocations {
            Revocations::Introspect => {}
            Revocations::Poll => {
                let stream = feed::connect(&guard).await?;
                let owed = feed::drain(&guard, &stream).await?;
                tokio::spawn(feed::run(Arc::downgrade(&guard.inner), stream, owed));
            }
            Revocations::Push { .. } => {
                // The guard is stale until its first verification event arrives through the
                // push, after everything that waited in the stream (see `push::heartbeat`).
                let stream = feed::connect(&guard).await?;
                tokio::spawn(push::heartbeat(Arc::downgrade(&guard.inner), stream));
            }
        }
        Ok(guard)
    }

    /// The route latchkeyd pushes events to, at the path of [`Revocations::Push`]'s URL; an
    /// empty router for the other ways. Merge it into the API's router.
    pub fn push_receiver<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        push::router(self)
    }

    /// Checks a request's credentials: its `Authorization` and, for a bound token, `DPoP`.
    pub async fn check(&self, parts: &Parts) -> Result<Principal, Rejection> {
        verify::check(self, parts).await
    }

    pub fn health(&self) -> Health {
        let feed = self.inner.feed.lock().expect("feed lock");
        let since = feed.last_contact.map(|t| t.elapsed());
        Health {
            revocations: self.inner.config.revocations.name(),
            feed_current: self.current(since),
            seconds_since_contact: since.map(|s| s.as_secs_f64()),
            revoked_sessions: self.inner.revoked.read().expect("revoked lock").len(),
            events_received: feed.events_received,
        }
    }

    /// Has the feed heard from latchkeyd within `max_staleness`, `since` its last contact?
    fn current(&self, since: Option<Duration>) -> bool {
        self.inner.config.revocations == Revocations::Introspect
            || since.is_some_and(|s| s <= self.inner.config.max_staleness)
    }

    /// Seconds since the feed last heard from latchkeyd, if it is stale; `None` while current.
    /// What every request asks, so it takes no other lock than the feed's.
    fn stale_for(&self) -> Option<Option<f64>> {
        if self.inner.config.revocations == Revocations::Introspect {
            return None;
        }
        let since = self
            .inner
            .feed
            .lock()
            .expect("feed lock")
            .last_contact
            .map(|t| t.elapsed());
        (!self.current(since)).then(|| since.map(|s| s.as_secs_f64()))
    }

    fn is_revoked(&self, session_id: &str) -> bool {
        self.inner
            .revoked
            .read()
            .expect("revoked lock")
            .contains_key(session_id)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Guard: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        Guard::from_ref(state).check(parts).await
    }
}
