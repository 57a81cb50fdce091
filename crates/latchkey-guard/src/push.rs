//! Push delivery (RFC 8935): latchkeyd posts each SET to the API, and the guard asks for a
//! verification event (SSF 1.0 §8.1.4) every third of `max_staleness`. The feed is current while
//! the latest of those came back in time: the push still reaches the API.

use std::sync::Weak;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::feed::{self, Believed, Stream};
use crate::{verify, Guard, GuardError, Inner, Revocations};

const SET_CONTENT_TYPE: &str = "application/secevent+jwt";
/// The most SET bytes the receiver reads: latchkeyd's are a few hundred.
const MAX_SET_BYTES: usize = 64 * 1024;
/// Verification events asked for and still awaited; older ones are given up.
const MAX_AWAITED: usize = 8;

pub(crate) fn check_url(url: &str) -> Result<(), GuardError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.query().is_none() => Ok(()),
        _ => Err(GuardError::Unexpected {
            url: url.to_string(),
            why: "the push URL must be an http(s) URL without a query".into(),
        }),
    }
}

/// A fresh secret for latchkeyd to present with each push: only it can post revocations here.
pub(crate) fn new_authorization() -> String {
    format!("Bearer {}", random())
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn router<S>(guard: &Guard) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    match &guard.inner.config.revocations {
        Revocations::Push { url } => {
            let path = reqwest::Url::parse(url)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| "/".to_string());
            axum::Router::new()
                .route(&path, post(receive))
                .with_state(guard.clone())
        }
        _ => axum::Router::new(),
    }
}

/// RFC 8935 §2.3–2.4: 202 for a SET taken, 400 with `err` for one refused for good; 401 when
/// the caller is not latchkeyd (it tries again, in case the header changed).
async fn receive(State(guard): State<Guard>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |status: StatusCode, err: &str, description: &str| {
        (
            status,
            axum::Json(json!({ "err": err, "description": description })),
        )
            .into_response()
    };
    let expected = guard
        .inner
        .push_authorization
        .as_deref()
        .unwrap_or_default();
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if expected.is_empty() || !bool::from(presented.ct_eq(expected.as_bytes())) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "this is not the Authorization header the stream was given",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.eq_ignore_ascii_case(SET_CONTENT_TYPE) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the SET as application/secevent+jwt",
        );
    }
    if body.len() > MAX_SET_BYTES {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the SET is too large",
        );
    }
    let Ok(set) = std::str::from_utf8(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the SET is not text",
        );
    };
    match feed::believe(&guard, set.trim()).await {
        Ok(Believed::Verification(Some(state))) => {
            let mut feed = guard.inner.feed.lock().expect("feed lock");
            if let Some(at) = feed.verifications.iter().position(|s| *s == state) {
                // This one and every older one are answered: the push reaches the API.
                feed.verifications.drain(..=at);
                feed.last_contact = Some(Instant::now());
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(why) => {
            tracing::warn!(why, "latchkey-guard: a pushed SET did not verify");
            refuse(StatusCode::BAD_REQUEST, "invalid_request", why)
        }
    }
}

/// How often the guard asks for a verification event: three chances within `max_staleness`.
fn interval(max_staleness: Duration) -> Duration {
    (max_staleness / 3).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Asks for a verification event now and then until the guard is dropped. The first, asked at
/// start, also makes latchkeyd push at once whatever waited in the stream, in order: when it
/// arrives, the guard has everything that was revoked before.
pub(crate) async fn heartbeat(weak: Weak<Inner>, mut stream: Stream) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let guard = Guard { inner };
        let pause = interval(guard.inner.config.max_staleness);
        let state = random();
        {
            let mut feed = guard.inner.feed.lock().expect("feed lock");
            feed.verifications.push(state.clone());
            let excess = feed.verifications.len().saturating_sub(MAX_AWAITED);
            feed.verifications.drain(..excess);
        }
        match ask(&guard, &stream, &state).await {
            Ok(()) => {}
            Err(e) => {
                feed::recover(&guard, &e, &mut stream).await;
                tracing::warn!(error = %e, stream = %stream.id, "latchkey-guard: cannot ask latchkeyd for a verification event");
            }
        }
        verify::forget_old(&guard, guard.inner.config.remember_revoked);
        drop(guard);
        tokio::time::sleep(pause).await;
    }
}

async fn ask(guard: &Guard, stream: &Stream, state: &str) -> Result<(), GuardError> {
    let token = feed::token(&guard.inner).await?;
    let url = &stream.verification_url;
    let req = guard
        .inner
        .http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "stream_id": stream.id, "state": state }));
    feed::send(req, url).await.map(drop)
}
