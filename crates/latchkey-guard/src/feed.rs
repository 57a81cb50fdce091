//! The revocation feed: the guard's own Shared Signals stream at latchkeyd, long-polled
//! (RFC 8936), each SET checked against latchkeyd's keys before it is believed.

use std::sync::Weak;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{verify, Guard, GuardError, Inner};

const POLL: &str = "urn:ietf:rfc:8936";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const SET_TYP: &str = "secevent+jwt";
/// The longest wait between attempts while latchkeyd cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct State {
    token_endpoint: String,
    token: Option<(String, Instant)>,
    pub(crate) last_contact: Option<Instant>,
    pub(crate) events_received: u64,
}

impl State {
    pub(crate) fn new(token_endpoint: String) -> Self {
        Self {
            token_endpoint,
            token: None,
            last_contact: None,
            events_received: 0,
        }
    }
}

/// The guard's stream: its id and where to poll it.
pub(crate) struct Stream {
    id: String,
    poll_url: String,
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

async fn answer<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
    url: &str,
) -> Result<T, GuardError> {
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
async fn token(inner: &Inner) -> Result<String, GuardError> {
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

/// Finds the guard's stream (by its description) or creates it: after a restart the guard
/// takes up the stream it had, and what waited in it while the API was down.
pub(crate) async fn connect(guard: &Guard) -> Result<Stream, GuardError> {
    let inner = &guard.inner;
    let config = &inner.config;
    let url = format!("{}/.well-known/ssf-configuration", config.issuer);
    let ssf: Value = get_json(&inner.http, &url, None).await?;
    let streams_url = ssf["configuration_endpoint"]
        .as_str()
        .ok_or_else(|| GuardError::Unexpected {
            url: url.clone(),
            why: "no configuration_endpoint".into(),
        })?
        .to_string();
    let token = token(inner).await?;
    let existing: Vec<StreamConfig> = get_json(&inner.http, &streams_url, Some(&token)).await?;
    let mine = existing.into_iter().find(|s| {
        s.description.as_deref() == Some(config.stream_description.as_str())
            && s.delivery.method == POLL
    });
    let stream = match mine {
        Some(s) => s,
        None => {
            let req = inner
                .http
                .post(&streams_url)
                .bearer_auth(&token)
                .json(&json!({
                    "delivery": { "method": POLL },
                    "events_requested": [SESSION_REVOKED],
                    "description": config.stream_description,
                }));
            answer(req, &streams_url).await?
        }
    };
    let poll_url = stream
        .delivery
        .endpoint_url
        .ok_or_else(|| GuardError::Unexpected {
            url: streams_url,
            why: "the stream has no endpoint_url to poll".into(),
        })?;
    tracing::info!(stream = %stream.stream_id, "latchkey-guard: receiving revocations");
    Ok(Stream {
        id: stream.stream_id,
        poll_url,
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
        match believe(guard, set).await {
            Ok(()) => owed.ack.push(jti.clone()),
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
                match &e {
                    GuardError::Refused { status: 401, .. } => forget_token(&guard.inner),
                    GuardError::Refused { status: 404, .. } => {
                        // The stream is gone (deleted by hand): make a new one.
                        match connect(&guard).await {
                            Ok(s) => stream = s,
                            Err(e) => {
                                tracing::warn!(error = %e, "latchkey-guard: cannot open a stream")
                            }
                        }
                    }
                    _ => {}
                }
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
        .post(&stream.poll_url)
        .bearer_auth(token)
        .json(&body);
    answer(req, &stream.poll_url).await
}

/// Checks one SET (typ, signature by latchkeyd's key, issuer, this receiver as audience) and
/// takes in a session revocation it announces.
async fn believe(guard: &Guard, set: &Value) -> Result<(), &'static str> {
    let set = set.as_str().ok_or("the SET is not a string")?;
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
    }
    Ok(())
}
