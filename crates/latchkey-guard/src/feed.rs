//! The revocation feed: the guard's own Shared Signals stream at latchkeyd, long-polled
//! (RFC 8936), each SET checked against latchkeyd's keys before it is believed.

use std::sync::Weak;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{verify, Guard, GuardError, Inner, Revocations};

const POLL: &str = "urn:ietf:rfc:8936";
const PUSH: &str = "urn:ietf:rfc:8935";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const SET_TYP: &str = "secevent+jwt";
/// The longest wait between attempts while latchkeyd cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct State {
    token_endpoint: String,
    token: Option<(String, Instant)>,
    pub(crate) last_contact: Option<Instant>,
    pub(crate) events_received: u64,
    /// The `state` of the verification events asked for and not yet received, newest last.
    pub(crate) verifications: Vec<String>,
}

impl State {
    pub(crate) fn new(token_endpoint: String) -> Self {
        Self {
            token_endpoint,
            token: None,
            last_contact: None,
            events_received: 0,
            verifications: Vec::new(),
        }
    }
}

/// The guard's stream: its id, where to poll it, where to ask for verification.
pub(crate) struct Stream {
    pub(crate) id: String,
    poll_url: Option<String>,
    pub(crate) verification_url: String,
}

pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<T, GuardError> {
    let mut req = http.get(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    answer(req, url).await
}

/// Sends a request to latchkeyd; its response if it succeeded.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, GuardError> {
    let res = req.send().await.map_err(|source| GuardError::Unreachable {
        url: url.to_string(),
        source,
    })?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(GuardError::Refused {
            url: url.to_string(),
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        });
    }
    Ok(res)
}

pub(crate) async fn answer<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
    url: &str,
) -> Result<T, GuardError> {
    let res = send(req, url).await?;
    res.json().await.map_err(|e| GuardError::Unexpected {
        url: url.to_string(),
        why: e.to_string(),
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// The service account's access token, signing in again when it is about to expire.
pub(crate) async fn token(inner: &Inner) -> Result<String, GuardError> {
    let endpoint = {
        let feed = inner.feed.lock().expect("feed lock");
        if let Some((token, until)) = &feed.token {
            if Instant::now() + Duration::from_secs(30) < *until {
                return Ok(token.clone());
            }
        }
        feed.token_endpoint.clone()
    };
    let config = &inner.config;
    let req = inner
        .http
        .post(&endpoint)
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "ssf")]);
    let t: TokenResponse = answer(req, &endpoint).await?;
    let until = Instant::now() + Duration::from_secs(t.expires_in);
    inner.feed.lock().expect("feed lock").token = Some((t.access_token.clone(), until));
    Ok(t.access_token)
}

fn forget_token(inner: &Inner) {
    inner.feed.lock().expect("feed lock").token = None;
}

/// What a failed call to the stream says to do: sign in again (401), or make a new stream
/// when it is gone (404, deleted by hand).
pub(crate) async fn recover(guard: &Guard, e: &GuardError, stream: &mut Stream) {
    match e {
        GuardError::Refused { status: 401, .. } => forget_token(&guard.inner),
        GuardError::Refused { status: 404, .. } => match connect(guard).await {
            Ok(s) => *stream = s,
            Err(e) => tracing::warn!(error = %e, "latchkey-guard: cannot open a stream"),
        },
        _ => {}
    }
}

#[derive(Deserialize)]
struct StreamConfig {
    stream_id: String,
    #[serde(default)]
    description: Option<String>,
    delivery: Delivery,
}

#[derive(Deserialize)]
struct Delivery {
    method: String,
    #[serde(default)]
    endpoint_url: Option<String>,
}

/// Finds the guard's stream (by its description and delivery method) or creates it: after a
/// restart the guard takes up the stream it had, and what waited in it while the API was down.
/// A push stream is told this start's endpoint and `Authorization` header.
pub(crate) async fn connect(guard: &Guard) -> Result<Stream, GuardError> {
    let inner = &guard.inner;
    let config = &inner.config;
    let url = format!("{}/.well-known/ssf-configuration", config.issuer);
    let ssf: Value = get_json(&inner.http, &url, None).await?;
    let endpoint = |name: &str| {
        ssf[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| GuardError::Unexpected {
                url: url.clone(),
                why: format!("no {name}"),
            })
    };
    let streams_url = endpoint("configuration_endpoint")?;
    let verification_url = endpoint("verification_endpoint")?;
    let delivery = match (&config.revocations, &inner.push_authorization) {
        (Revocations::Push { url }, Some(authorization)) => json!({
            "method": PUSH,
            "endpoint_url": url,
            "authorization_header": authorization,
        }),
        _ => json!({ "method": POLL }),
    };
    let method = delivery["method"].as_str().unwrap_or(POLL);
    let token = token(inner).await?;
    let existing: Vec<StreamConfig> = get_json(&inner.http, &streams_url, Some(&token)).await?;
    let mine = existing.into_iter().find(|s| {
        s.description.as_deref() == Some(config.stream_description.as_str())
            && s.delivery.method == method
    });
    let stream: StreamConfig = match mine {
        Some(s) if method == POLL => s,
        Some(s) => {
            let req = inner
                .http
                .patch(&streams_url)
                .bearer_auth(&token)
                .json(&json!({ "stream_id": s.stream_id, "delivery": delivery }));
            answer(req, &streams_url).await?
        }
        None => {
            let req = inner
                .http
                .post(&streams_url)
                .bearer_auth(&token)
                .json(&json!({
                    "delivery": delivery,
                    "events_requested": [SESSION_REVOKED],
                    "description": config.stream_description,
                }));
            answer(req, &streams_url).await?
        }
    };
    if method == POLL && stream.delivery.endpoint_url.is_none() {
        return Err(GuardError::Unexpected {
            url: streams_url,
            why: "the stream has no endpoint_url to poll".into(),
        });
    }
    tracing::info!(stream = %stream.stream_id, delivery = method, "latchkey-guard: receiving revocations");
    Ok(Stream {
        id: stream.stream_id,
        poll_url: stream.delivery.endpoint_url.filter(|_| method == POLL),
        verification_url,
    })
}

#[derive(Deserialize)]
struct PollAnswer {
    #[serde(default)]
    sets: Map<String, Value>,
    #[serde(default, rename = "moreAvailable")]
    more_available: bool,
}

/// What the guard owes latchkeyd at its next poll: acknowledgements, and SETs it refused.
#[derive(Default)]
pub(crate) struct Owed {
    ack: Vec<String>,
    errs: Map<String, Value>,
}

/// Takes in what waits in the stream, before the guard accepts any token: a session revoked
/// while the API was down is refused from its first request on.
pub(crate) async fn drain(guard: &Guard, stream: &Stream) -> Result<Owed, GuardError> {
    let mut owed = Owed::default();
    loop {
        let answer = poll_once(guard, stream, &owed, false).await?;
        guard.inner.feed.lock().expect("feed lock").last_contact = Some(Instant::now());
        owed = take_in(guard, &answer).await;
        if !answer.more_available {
            return Ok(owed);
        }
    }
}

/// Believes what it can of a poll's SETs; what to acknowledge and what to refuse.
async fn take_in(guard: &Guard, answer: &PollAnswer) -> Owed {
    let mut owed = Owed::default();
    for (jti, set) in &answer.sets {
        let believed = match set.as_str() {
            Some(set) => believe(guard, set).await,
            None => Err("the SET is not a string"),
        };
        match believed {
            Ok(_) => owed.ack.push(jti.clone()),
            Err(why) => {
                tracing::warn!(jti = %jti, why, "latchkey-guard: a SET did not verify");
                owed.errs.insert(
                    jti.clone(),
                    json!({ "err": "invalid_request", "description": why }),
                );
            }
        }
    }
    owed
}

/// Polls until the guard is dropped, each poll waiting for news unless more wait or
/// acknowledgements are owed.
pub(crate) async fn run(weak: Weak<Inner>, mut stream: Stream, mut owed: Owed) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let guard = Guard { inner };
        let wait = owed.ack.is_empty() && owed.errs.is_empty();
        match poll_once(&guard, &stream, &owed, wait).await {
            Ok(answer) => {
                backoff = Duration::from_millis(200);
                guard.inner.feed.lock().expect("feed lock").last_contact = Some(Instant::now());
                owed = take_in(&guard, &answer).await;
                verify::forget_old(&guard, guard.inner.config.remember_revoked);
            }
            Err(e) => {
                recover(&guard, &e, &mut stream).await;
                tracing::warn!(error = %e, stream = %stream.id, "latchkey-guard: the revocation feed failed; retrying");
                drop(guard);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn poll_once(
    guard: &Guard,
    stream: &Stream,
    owed: &Owed,
    wait: bool,
) -> Result<PollAnswer, GuardError> {
    let token = token(&guard.inner).await?;
    let poll_url = stream.poll_url.as_deref().unwrap_or_default();
    let mut body = json!({ "maxEvents": 100, "returnImmediately": !wait });
    if !owed.ack.is_empty() {
        body["ack"] = json!(owed.ack);
    }
    if !owed.errs.is_empty() {
        body["setErrs"] = Value::Object(owed.errs.clone());
    }
    let req = guard
        .inner
        .http
        .post(poll_url)
        .bearer_auth(token)
        .json(&body);
    answer(req, poll_url).await
}

/// What a SET that verified said.
pub(crate) enum Believed {
    SessionRevoked,
    /// A verification event (SSF 1.0 §8.1.4), with the `state` the guard asked it to echo.
    Verification(Option<String>),
    Other,
}

/// Checks one SET (typ, signature by latchkeyd's key, issuer, this receiver as audience) and
/// takes in a session revocation it announces.
pub(crate) async fn believe(guard: &Guard, set: &str) -> Result<Believed, &'static str> {
    let header = jsonwebtoken::decode_header(set).map_err(|_| "the SET is not a JWT")?;
    if header.typ.as_deref() != Some(SET_TYP) {
        return Err("the SET's typ is not secevent+jwt");
    }
    let kid = header.kid.as_deref().ok_or("the SET names no key")?;
    let (alg, key) = verify::key_for(guard, kid)
        .await
        .ok_or("the SET was signed by a key latchkeyd does not publish")?;
    let config = &guard.inner.config;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.client_id]);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
        .map_err(|_| "the SET's signature, issuer or audience is wrong")?
        .claims;
    if claims["events"].get(SESSION_REVOKED).is_some() {
        let session = claims["sub_id"]["session"]["id"]
            .as_str()
            .ok_or("a session-revoked SET without the session")?;
        guard
            .inner
            .revoked
            .write()
            .expect("revoked lock")
            .insert(session.to_string(), Instant::now());
        guard.inner.feed.lock().expect("feed lock").events_received += 1;
        tracing::info!(session = %session, "latchkey-guard: a session was revoked");
        return Ok(Believed::SessionRevoked);
    }
    if let Some(event) = claims["events"].get(VERIFICATION) {
        return Ok(Believed::Verification(
            event["state"].as_str().map(str::to_string),
        ));
    }
    Ok(Believed::Other)
}
