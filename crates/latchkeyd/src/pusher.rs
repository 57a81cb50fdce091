//! Push delivery of Shared Signals (RFC 8935): each event waiting in a push stream's outbox is
//! posted to the receiver's endpoint as `application/secevent+jwt`, and leaves the outbox once
//! the receiver took it. A receiver that is down or failing gets it again later, with backoff,
//! until it takes it or the event expires: nothing is lost across a restart or a replica.

use std::time::Duration;

use crate::server::AppState;
use crate::ssf;
use crate::store::ssf::{self as streams, Push, Retry};

/// How many events one round claims.
const CLAIM: i64 = 50;
/// How often the pusher looks for due events without being woken (another replica's events,
/// retries coming due).
const TICK: Duration = Duration::from_millis(250);
/// The longest wait between two attempts at one event.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;

/// The sealing context of a stream's Authorization header: it opens only for its stream.
pub fn header_context(stream_id: &str) -> Vec<u8> {
    format!("ssf push authorization {stream_id}").into_bytes()
}

/// Pushes until the server shuts down; woken at once by this process's revocations.
pub async fn run(state: AppState) {
    let mut revocations = state.db.revocations();
    let mut stop = state.shutdown.subscribe();
    loop {
        match streams::claim_pushes(&state.db, CLAIM, state.now()).await {
            Ok(pushes) => {
                let busy = pushes.len() as i64 == CLAIM;
                let deliveries = by_stream(pushes)
                    .into_iter()
                    .map(|stream| deliver_in_order(&state, stream));
                futures_util::future::join_all(deliveries).await;
                if busy {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the push outbox"),
        }
        tokio::select! {
            _ = revocations.recv() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}

enum Outcome {
    /// Taken (2xx), or refused for good (400 with an RFC 8935 error): it leaves the outbox.
    Done,
    /// Try again later.
    Again(String),
}

/// The claimed pushes grouped by stream, each group in the outbox's order.
fn by_stream(pushes: Vec<Push>) -> Vec<Vec<Push>> {
    let mut groups: Vec<Vec<Push>> = Vec::new();
    for push in pushes {
        match groups.iter_mut().find(|g| g[0].stream_id == push.stream_id) {
            Some(group) => group.push(push),
            None => groups.push(vec![push]),
        }
    }
    groups
}

/// Pushes one stream's events one after another, in the order they were written, and stops
/// at the first that fails: the rest wait with it. A receiver so never takes an event while
/// an earlier one is still owed, and the verification event it asked for (SSF 1.0 §8.1.4)
/// proves that it has everything before it.
async fn deliver_in_order(state: &AppState, pushes: Vec<Push>) {
    let mut pushes = pushes.into_iter();
    for push in pushes.by_ref() {
        if let Some(next_at) = deliver(state, &push).await {
            for rest in pushes {
                let (stream, jti) = (&rest.stream_id, &rest.event.jti);
                if let Err(e) =
                    streams::retry_at(&state.db, stream, jti, next_at, Retry::Untried).await
                {
                    tracing::warn!(error = %e, "cannot record a push's outcome");
                }
            }
            return;
        }
    }
}

/// Pushes one event; when it is to be tried again, if it failed.
async fn deliver(state: &AppState, push: &Push) -> Option<i64> {
    let outcome = attempt(state, push).await;
    let (result, again) = match outcome {
        Outcome::Done => (
            streams::pushed(&state.db, &push.stream_id, &push.event.jti).await,
            None,
        ),
        Outcome::Again(why) => {
            // 1 s, 2 s, 4 s, … up to five minutes.
            let backoff = (1000i64 << push.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
            let next_at = state.now() + backoff;
            tracing::warn!(stream = %push.stream_id, attempts = push.attempts + 1, why, "a push to a receiver failed; it will be tried again");
            (
                streams::retry_at(
                    &state.db,
                    &push.stream_id,
                    &push.event.jti,
                    next_at,
                    Retry::Failed,
                )
                .await,
                Some(next_at),
            )
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record a push's outcome");
    }
    again
}

async fn attempt(state: &AppState, push: &Push) -> Outcome {
    let policy = &state.settings.ssf;
    let allow_loopback = policy.allow_http_loopback_push;
    let url = match ssf::push_url(&push.endpoint_url, allow_loopback) {
        Ok(url) => url,
        Err(why) => return Outcome::Again(why.to_string()),
    };
    let addr = match ssf::push_address(&url, allow_loopback).await {
        Ok(addr) => addr,
        Err(why) => return Outcome::Again(why.to_string()),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .resolve(&host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(policy.push_timeout_secs.max(1)))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => return Outcome::Again(e.to_string()),
    };
    let claims = ssf::set_claims(&state.issuer, &push.client_id, &push.stream_id, &push.event);
    let set = match ssf::sign(&state.keys, &claims) {
        Ok(set) => set,
        Err(e) => return Outcome::Again(e.to_string()),
    };
    let mut req = client
        .post(url)
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json")
        .body(set);
    if let Some(sealed) = &push.authorization_header {
        let Some(header) = state
            .push_key
            .open(sealed, &header_context(&push.stream_id))
        else {
            return Outcome::Again("the stream's Authorization header cannot be opened".into());
        };
        match String::from_utf8(header.expose().clone()) {
            Ok(h) => req = req.header("authorization", h),
            Err(_) => {
                return Outcome::Again("the stream's Authorization header is not text".into())
            }
        }
    }
    match req.send().await {
        Ok(res) if res.status().is_success() => Outcome::Done,
        Ok(res) if res.status() == reqwest::StatusCode::BAD_REQUEST => {
            // RFC 8935 §2.3: the receiver looked at this SET and will not take it; sending it
            // again changes nothing.
            let body = res.text().await.unwrap_or_default();
            tracing::warn!(stream = %push.stream_id, jti = %push.event.jti, answer = %body.chars().take(300).collect::<String>(), "a receiver refused a SET");
            Outcome::Done
        }
        Ok(res) => Outcome::Again(format!("the receiver answered {}", res.status())),
        Err(e) => Outcome::Again(e.to_string()),
    }
}
