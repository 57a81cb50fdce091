//! The Shared Signals transmitter: its configuration (SSF 1.0 §7.1), stream management
//! (§8.1), and poll delivery (RFC 8936). Receivers are service accounts: confidential clients
//! whose `client_credentials` token carries the `ssf` scope. Each stream belongs to the client
//! that created it; another client's stream is not found.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::dpop::{resource_access, Resource};
use super::error::OAuthError;
use super::origin::RequestOrigin;
use crate::pusher;
use crate::scope;
use crate::secret::new_id;
use crate::server::AppState;
use crate::ssf::{self, EVENTS_SUPPORTED, POLL, PUSH, SPEC_VERSION};
use crate::store::clients::ClientKind;
use crate::store::ssf::{self as streams, Status, Stream, StreamSettings};
use crate::store::{sessions, users, StoreError};

/// The longest a poll that asks to wait (`returnImmediately: false`) waits for an event.
const LONG_POLL: Duration = Duration::from_secs(30);
/// How often a waiting poll looks again, for events written by another replica; this one's
/// own revocations wake it at once.
const RECHECK: Duration = Duration::from_millis(200);
/// The most SETs one poll answer carries.
const MAX_EVENTS: usize = 100;

pub async fn configuration(State(state): State<AppState>) -> Response {
    let url = |path: &str| format!("{}{path}", state.issuer);
    let body = json!({
        "spec_version": SPEC_VERSION,
        "issuer": state.issuer,
        "jwks_uri": url("/jwks.json"),
        "delivery_methods_supported": [POLL, PUSH],
        "configuration_endpoint": url("/ssf/streams"),
        "status_endpoint": url("/ssf/status"),
        "verification_endpoint": url("/ssf/verify"),
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:6749" }],
        "default_subjects": "ALL",
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}

/// The client a stream-management or poll request comes from: a live `ssf` token of a
/// confidential client which is still registered, and is not a user's.
pub struct Receiver(String);

impl FromRequestParts<AppState> for Receiver {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let resource = Resource {
            audience: &state.issuer,
            scope: scope::SSF,
            lacking_scope: "Shared Signals streams are for a receiver's own token: client_credentials with the ssf scope",
        };
        let path = parts.uri.path().to_string();
        let claims = resource_access(
            state,
            &parts.headers,
            parts.method.as_str(),
            &path,
            &resource,
        )
        .await?;
        match state.client(&claims.client_id).await? {
            Some(c) if c.kind == ClientKind::Confidential && claims.sid.is_none() => {
                Ok(Receiver(c.client_id.clone()))
            }
            _ => Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Shared Signals streams are for a receiver's own token: client_credentials with the ssf scope",
            )),
        }
    }
}

fn not_found() -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this receiver has no stream with that stream_id",
    )
}

/// A JSON body, or a 400 saying what is wrong with it.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, OAuthError> {
    json.map(|Json(t)| t).map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body is not what this endpoint takes: {}",
            e.body_text()
        ))
    })
}

/// A stream's configuration as SSF 1.0 §8.1.1 shows it.
fn config(state: &AppState, s: &Stream) -> Value {
    let requested: Vec<&str> = s
        .events_requested
        .iter()
        .filter_map(|k| ssf::uri_of(k))
        .collect();
    // The Authorization header a push stream was given is a secret: never shown again.
    let mut delivery = json!({ "method": s.delivery_method });
    if s.delivery_method == POLL {
        delivery["endpoint_url"] = json!(poll_url(state, &s.id));
    } else if let Some(url) = &s.endpoint_url {
        delivery["endpoint_url"] = json!(url);
    }
    let mut c = json!({
        "stream_id": s.id,
        "iss": state.issuer,
        "aud": s.client_id,
        "events_supported": EVENTS_SUPPORTED,
        "events_requested": requested,
        "events_delivered": requested,
        "delivery": delivery,
    });
    if let Some(d) = &s.description {
        c["description"] = json!(d);
    }
    c
}

fn poll_url(state: &AppState, stream_id: &str) -> String {
    format!("{}/ssf/poll/{stream_id}", state.issuer)
}

#[derive(Deserialize)]
pub struct Delivery {
    method: String,
    #[serde(default)]
    endpoint_url: Option<String>,
    /// Push: what latchkeyd sends as `Authorization` with every SET (RFC 8935 §2).
    #[serde(default)]
    authorization_header: Option<String>,
}

/// What a receiver sends to create, update or replace a stream. Transmitter-supplied members
/// it echoes back are ignored.
#[derive(Deserialize)]
pub struct StreamBody {
    #[serde(default)]
    stream_id: Option<String>,
    #[serde(default)]
    delivery: Option<Delivery>,
    #[serde(default)]
    events_requested: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// The receiver's settings from a body, over `base` (what it has now; defaults when new), for
/// stream `stream_id`: a push endpoint checked against where latchkeyd may connect, its
/// Authorization header sealed to the stream.
async fn settings(
    state: &AppState,
    stream_id: &str,
    body: StreamBody,
    base: StreamSettings,
) -> Result<StreamSettings, OAuthError> {
    let (delivery_method, endpoint_url, authorization_header) = match body.delivery {
        // The transmitter names a poll stream's endpoint (SSF 1.0 §8.1.1): the receiver's,
        // if it sends one, is ignored.
        Some(d) if d.method == POLL => (POLL.to_string(), None, None),
        Some(d) if d.method == PUSH => {
            let endpoint = d.endpoint_url.ok_or_else(|| {
                OAuthError::invalid_request("push delivery needs the receiver's endpoint_url")
            })?;
            let allow = state.settings.ssf.allow_http_loopback_push;
            let url = ssf::push_url(&endpoint, allow).map_err(OAuthError::invalid_request)?;
            ssf::push_address(&url, allow)
                .await
                .map_err(OAuthError::invalid_request)?;
            let header = match d.authorization_header {
                Some(h) if h.len() > 4096 || h.chars().any(char::is_control) => {
                    return Err(OAuthError::invalid_request(
                        "authorization_header is one header value of at most 4096 bytes",
                    ))
                }
                Some(h) => Some(
                    state
                        .push_key
                        .seal(h.as_bytes(), &pusher::header_context(stream_id)),
                ),
                None => None,
            };
            (PUSH.to_string(), Some(url.to_string()), header)
        }
        Some(d) => {
            return Err(OAuthError::invalid_request(format!(
                "delivery method {:?} is not supported: use {POLL} (poll) or {PUSH} (push)",
                d.method
            )))
        }
        None => (
            base.delivery_method,
            base.endpoint_url,
            base.authorization_header,
        ),
    };
    let events_requested = match body.events_requested {
        Some(uris) => uris
            .iter()
            .filter_map(|u| ssf::kind_of(u))
            .map(str::to_string)
            .collect(),
        None => base.events_requested,
    };
    let description = match body.description {
        Some(d) if d.chars().count() > 500 || d.chars().any(char::is_control) => {
            return Err(OAuthError::invalid_request(
                "description is plain text of at most 500 characters",
            ))
        }
        Some(d) => Some(d),
        None => base.description,
    };
    Ok(StreamSettings {
        delivery_method,
        endpoint_url,
        authorization_header,
        events_requested,
        description,
    })
}

fn empty() -> StreamSettings {
    StreamSettings {
        delivery_method: POLL.to_string(),
        endpoint_url: None,
        authorization_header: None,
        events_requested: Vec::new(),
        description: None,
    }
}

fn current(s: &Stream) -> StreamSettings {
    StreamSettings {
        delivery_method: s.delivery_method.clone(),
        endpoint_url: s.endpoint_url.clone(),
        authorization_header: s.authorization_header.clone(),
        events_requested: s.events_requested.clone(),
        description: s.description.clone(),
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    stream_id: Option<String>,
}

impl StreamQuery {
    fn required(self) -> Result<String, OAuthError> {
        self.stream_id
            .ok_or_else(|| OAuthError::invalid_request("stream_id is missing"))
    }
}

/// POST: creates a stream (201). Without `delivery`, a poll stream (SSF 1.0 §8.1.1.1).
pub async fn create(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    json: Result<Json<StreamBody>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let id = new_id();
    let wanted = settings(&state, &id, body(json)?, empty()).await?;
    let stream = match streams::create(&state.db, &id, &client_id, &wanted, state.now()).await {
        Err(StoreError::Conflict(why)) => {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "invalid_request",
                why,
            ))
        }
        other => other?,
    };
    Ok((StatusCode::CREATED, Json(config(&state, &stream))).into_response())
}

/// GET: one stream with `stream_id`, else all of the receiver's, as an array.
pub async fn read(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    Query(q): Query<StreamQuery>,
) -> Result<Response, OAuthError> {
    let body = match q.stream_id {
        Some(id) => {
            let stream = streams::find(&state.db, &client_id, &id)
                .await?
                .ok_or_else(not_found)?;
            config(&state, &stream)
        }
        None => Value::Array(
            streams::list(&state.db, &client_id)
                .await?
                .iter()
                .map(|s| config(&state, s))
                .collect(),
        ),
    };
    Ok(Json(body).into_response())
}

/// PATCH: changes what the body names; PUT: replaces every receiver-supplied member, a
/// missing one deleted (SSF 1.0 §8.1.1.3–4).
pub async fn update(
    State(state): State<AppState>,
    method: Method,
    Receiver(client_id): Receiver,
    json: Result<Json<StreamBody>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let b = body(json)?;
    let id = b
        .stream_id
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("stream_id is missing"))?;
    let stream = streams::find(&state.db, &client_id, &id)
        .await?
        .ok_or_else(not_found)?;
    let base = if method == Method::PUT {
        empty()
    } else {
        current(&stream)
    };
    let wanted = settings(&state, &id, b, base).await?;
    let stream = streams::update(&state.db, &client_id, &id, &wanted, state.now())
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(config(&state, &stream)).into_response())
}

/// DELETE: the stream and whatever waits in it (204).
pub async fn delete(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    Query(q): Query<StreamQuery>,
) -> Result<Response, OAuthError> {
    let id = q.required()?;
    if !streams::delete(&state.db, &client_id, &id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn status_body(s: &Stream) -> Value {
    let mut body = json!({ "stream_id": s.id, "status": s.status.as_str() });
    if let Some(reason) = &s.status_reason {
        body["reason"] = json!(reason);
    }
    body
}

pub async fn read_status(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    Query(q): Query<StreamQuery>,
) -> Result<Response, OAuthError> {
    let id = q.required()?;
    let stream = streams::find(&state.db, &client_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(status_body(&stream)).into_response())
}

#[derive(Deserialize)]
pub struct StatusBody {
    stream_id: String,
    status: Status,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn update_status(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    json: Result<Json<StatusBody>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let b = body(json)?;
    if b.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(OAuthError::invalid_request(
            "reason is at most 500 characters",
        ));
    }
    let stream = streams::set_status(
        &state.db,
        &client_id,
        &b.stream_id,
        b.status,
        b.reason.as_deref(),
        state.now(),
    )
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(status_body(&stream)).into_response())
}

#[derive(Deserialize)]
pub struct VerifyBody {
    stream_id: String,
    #[serde(default)]
    state: Option<String>,
}

/// Puts a verification event in the stream, echoing `state` (SSF 1.0 §8.1.4.2): 204.
pub async fn verify(
    State(state): State<AppState>,
    Receiver(client_id): Receiver,
    json: Result<Json<VerifyBody>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let b = body(json)?;
    if b.state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(OAuthError::invalid_request("state is at most 1024 bytes"));
    }
    streams::find(&state.db, &client_id, &b.stream_id)
        .await?
        .ok_or_else(not_found)?;
    streams::verify(&state.db, &b.stream_id, b.state.as_deref(), state.now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An RFC 8936 §2.2 poll request.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PollBody {
    #[serde(default)]
    max_events: Option<usize>,
    #[serde(default)]
    return_immediately: bool,
    #[serde(default)]
    ack: Vec<String>,
    #[serde(default)]
    set_errs: HashMap<String, SetErr>,
}

#[derive(Deserialize)]
pub struct SetErr {
    err: String,
    #[serde(default)]
    description: Option<String>,
}

/// RFC 8936: acknowledges what the receiver names, then answers with the SETs waiting, at
/// once or (unless `returnImmediately`) as soon as one arrives, within [`LONG_POLL`].
pub async fn poll(
    State(state): State<AppState>,
    Path(stream_id): Path<String>,
    Receiver(client_id): Receiver,
    json: Result<Json<PollBody>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let b = body(json)?;
    let stream = streams::find(&state.db, &client_id, &stream_id)
        .await?
        .ok_or_else(not_found)?;
    if stream.delivery_method != POLL {
        return Err(OAuthError::invalid_request(
            "this stream is delivered by push, not polled",
        ));
    }
    // A SET the receiver could not process is delivered all the same: it says why, and the
    // transmitter cannot do better by sending it again (RFC 8936 §2.4).
    let mut ack = b.ack;
    for (jti, e) in b.set_errs {
        tracing::warn!(stream = %stream_id, err = %e.err, description = e.description.as_deref().unwrap_or(""), "a receiver reported an error with a SET");
        ack.push(jti);
    }
    let max = b.max_events.unwrap_or(MAX_EVENTS).min(MAX_EVENTS);
    // A stream that is not enabled is acknowledged but delivers nothing.
    let deliver = if stream.status == Status::Enabled {
        max
    } else {
        0
    };
    let wait = !b.return_immediately && deliver > 0;
    // An empty answer must leave before the server's request timeout: cut off, the poll would
    // reach the receiver as a 503, and a receiver that hears nothing for long enough takes
    // itself for out of touch (latchkey-guard then refuses every token).
    let request_timeout = Duration::from_secs(state.settings.limits.request_timeout_secs);
    let deadline = tokio::time::Instant::now() + LONG_POLL.min(request_timeout * 3 / 4);
    let mut revocations = state.db.revocations();
    let (events, more) = loop {
        let (events, more) =
            streams::poll(&state.db, &stream_id, &ack, deliver, state.now()).await?;
        ack.clear();
        if !events.is_empty() || !wait || tokio::time::Instant::now() >= deadline {
            break (events, more);
        }
        tokio::select! {
            _ = revocations.recv() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    let mut sets = serde_json::Map::new();
    for event in &events {
        let claims = ssf::set_claims(&state.issuer, &client_id, &stream_id, event);
        sets.insert(event.jti.clone(), json!(ssf::sign(&state.keys, &claims)?));
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "sets": sets, "moreAvailable": more })),
    )
        .into_response())
}

/// A Global Token Revocation request: the user, as an RFC 9493 subject identifier.
#[derive(Deserialize)]
pub struct GlobalRevocation {
    sub_id: Value,
}

/// draft-parecki-oauth-global-token-revocation: a service account with the
/// `global_token_revocation` scope ends every session of a user (`email`, or `iss_sub` with
/// this issuer). 204 when done, whether or not the user had live sessions; 404 for a subject
/// that is no account here.
pub async fn global_revocation(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    json: Result<Json<GlobalRevocation>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let resource = Resource {
        audience: &state.issuer,
        scope: scope::GLOBAL_TOKEN_REVOCATION,
        lacking_scope: "Global Token Revocation needs a service account's token with the global_token_revocation scope",
    };
    let claims = resource_access(&state, &headers, method.as_str(), uri.path(), &resource).await?;
    if claims.sid.is_some() {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "Global Token Revocation is for a service account's own token",
        ));
    }
    let sub = body(json)?.sub_id;
    let user = match sub["format"].as_str() {
        Some("email") => {
            let email = sub["email"]
                .as_str()
                .ok_or_else(|| OAuthError::invalid_request("an email subject needs email"))?;
            users::find_by_email(&state.db, email).await?
        }
        Some("iss_sub") => {
            let (Some(iss), Some(id)) = (sub["iss"].as_str(), sub["sub"].as_str()) else {
                return Err(OAuthError::invalid_request(
                    "an iss_sub subject needs iss and sub",
                ));
            };
            if iss != state.issuer {
                return Err(OAuthError::invalid_request(
                    "the subject's iss is another issuer",
                ));
            }
            users::find(&state.db, id).await?
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "sub_id must be an RFC 9493 subject of format email or iss_sub",
            ))
        }
    };
    let user = user.ok_or_else(|| {
        OAuthError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no account here matches that subject",
        )
    })?;
    let revoked =
        sessions::service_revoke_all(&state.db, &claims.client_id, &user.id, &origin, state.now())
            .await?;
    tracing::info!(client = %claims.client_id, sessions = revoked.len(), "global token revocation");
    Ok(StatusCode::NO_CONTENT.into_response())
}
