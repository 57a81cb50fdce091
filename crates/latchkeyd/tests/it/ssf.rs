//! The Shared Signals transmitter: configuration, stream management and poll delivery of CAEP
//! session-revoked events, as a receiver (a service account) uses them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkeyd::store::users::Role;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::*;

pub(crate) const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const POLL: &str = "urn:ietf:rfc:8936";
const PUSH: &str = "urn:ietf:rfc:8935";

/// A service account with the `ssf` scope, and its access token.
pub(crate) async fn receiver(server: &TestServer, id: &str) -> String {
    let secret = server.add_service(id, &["ssf"]).await;
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A request to the transmitter with a bearer token and a JSON body; status and JSON answer.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.http.request(method, server.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn create_stream(server: &TestServer, token: &str) -> Value {
    let (status, stream) = call(
        server,
        reqwest::Method::POST,
        "/ssf/streams",
        Some(token),
        Some(json!({
            "delivery": { "method": POLL },
            "events_requested": [SESSION_REVOKED],
            "description": "notes-api",
        })),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    stream
}

/// Polls a stream (RFC 8936); the SETs by jti and `moreAvailable`.
async fn poll(server: &TestServer, token: &str, stream: &Value, body: Value) -> (Value, bool) {
    let url = stream["delivery"]["endpoint_url"].as_str().unwrap();
    let path = url.strip_prefix(&server.base).unwrap();
    let (status, answer) = call(server, reqwest::Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    (answer["sets"].clone(), answer["moreAvailable"] == true)
}

/// Verifies a SET against the JWKS as a receiver does: `typ`, signature, issuer, audience.
pub(crate) async fn set_claims(server: &TestServer, set: &Value, audience: &str) -> Value {
    let (header, claims) =
        verify_requiring(server, set.as_str().unwrap(), audience, &["iss", "aud"]).await;
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert!(
        claims.get("exp").is_none() && claims.get("sub").is_none(),
        "{claims}"
    );
    claims
}

async fn a_receiver_manages_its_streams(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = receiver(&server, "receiver").await;

    let config: Value = server.get_json("/.well-known/ssf-configuration").await;
    assert_eq!(config["spec_version"], "1_0");
    assert_eq!(config["issuer"], server.base);
    assert_eq!(config["jwks_uri"], server.url("/jwks.json"));
    assert_eq!(config["delivery_methods_supported"], json!([POLL, PUSH]));
    assert_eq!(config["configuration_endpoint"], server.url("/ssf/streams"));
    assert_eq!(config["status_endpoint"], server.url("/ssf/status"));
    assert_eq!(config["verification_endpoint"], server.url("/ssf/verify"));
    assert_eq!(config["default_subjects"], "ALL");

    let (status, stream) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/streams",
        Some(&token),
        Some(json!({ "events_requested": [SESSION_REVOKED, "urn:example:unknown"] })),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    let id = stream["stream_id"].as_str().unwrap().to_string();
    assert_eq!(stream["iss"], server.base);
    assert_eq!(stream["aud"], "receiver");
    assert_eq!(stream["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(
        stream["delivery"]["method"], POLL,
        "poll when none is named"
    );
    assert_eq!(
        stream["delivery"]["endpoint_url"],
        server.url(&format!("/ssf/poll/{id}"))
    );

    let (status, all) = call(
        &server,
        reqwest::Method::GET,
        "/ssf/streams",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let one_path = format!("/ssf/streams?stream_id={id}");
    let (_, one) = call(&server, reqwest::Method::GET, &one_path, Some(&token), None).await;
    assert_eq!(one, stream);

    let (status, patched) = call(
        &server,
        reqwest::Method::PATCH,
        "/ssf/streams",
        Some(&token),
        Some(json!({ "stream_id": id, "description": "notes" })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "notes");
    assert_eq!(
        patched["events_delivered"],
        json!([SESSION_REVOKED]),
        "kept"
    );
    let (_, replaced) = call(
        &server,
        reqwest::Method::PUT,
        "/ssf/streams",
        Some(&token),
        Some(json!({ "stream_id": id, "events_requested": [SESSION_REVOKED] })),
    )
    .await;
    assert!(
        replaced.get("description").is_none(),
        "PUT drops what it does not name: {replaced}"
    );

    let status_path = format!("/ssf/status?stream_id={id}");
    let (_, status_now) = call(
        &server,
        reqwest::Method::GET,
        &status_path,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status_now, json!({ "stream_id": id, "status": "enabled" }));
    let (status, paused) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/status",
        Some(&token),
        Some(json!({ "stream_id": id, "status": "paused", "reason": "maintenance" })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["reason"], "maintenance");

    // Another receiver does not see it; a user's token and no token are refused.
    let other = receiver(&server, "other").await;
    let (status, _) = call(&server, reqwest::Method::GET, &one_path, Some(&other), None).await;
    assert_eq!(status, 404);
    let (_, others) = call(
        &server,
        reqwest::Method::GET,
        "/ssf/streams",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(others, json!([]));
    server.add_user("erin@example.com", Role::User).await;
    let user = sign_in(&server, "erin@example.com").await;
    let user_token = user["access_token"].as_str().unwrap();
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        "/ssf/streams",
        Some(user_token),
        None,
    )
    .await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = call(&server, reqwest::Method::GET, "/ssf/streams", None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/streams",
        Some(&token),
        Some(json!({ "delivery": { "method": "urn:example:carrier-pigeon" } })),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let res = server
        .http
        .post(server.url("/ssf/streams"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Removed and registered again under the same id, a client starts with no streams.
    create_stream(&server, &other).await;
    latchkeyd::store::clients::remove(
        &server.db,
        "other",
        latchkeyd::store::audit::Actor::Operator("test"),
        server.clock.now_ms(),
    )
    .await
    .unwrap();
    let again = receiver(&server, "other").await;
    let (_, theirs) = call(
        &server,
        reqwest::Method::GET,
        "/ssf/streams",
        Some(&again),
        None,
    )
    .await;
    assert_eq!(theirs, json!([]), "the old registration's streams are gone");

    let delete_path = format!("/ssf/streams?stream_id={id}");
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &delete_path,
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404, "not another receiver's to delete");
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &delete_path,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(&server, reqwest::Method::GET, &one_path, Some(&token), None).await;
    assert_eq!(status, 404);
}

async fn a_revoked_session_reaches_the_receiver_as_a_signed_event(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("erin@example.com", Role::User).await;
    let token = receiver(&server, "receiver").await;
    let stream = create_stream(&server, &token).await;
    let stream_id = stream["stream_id"].as_str().unwrap();

    // Verification echoes the state.
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/verify",
        Some(&token),
        Some(json!({ "stream_id": stream_id, "state": "VGhpcyBpcyBhbiBleGFtcGxl" })),
    )
    .await;
    assert_eq!(status, 204);
    let (sets, more) = poll(
        &server,
        &token,
        &stream,
        json!({ "returnImmediately": true }),
    )
    .await;
    assert!(!more);
    let (jti, set) = sets.as_object().unwrap().iter().next().expect("one SET");
    let claims = set_claims(&server, set, "receiver").await;
    assert_eq!(&claims["jti"], jti);
    assert_eq!(
        claims["sub_id"],
        json!({ "format": "opaque", "id": stream_id })
    );
    assert_eq!(
        claims["events"][VERIFICATION]["state"],
        "VGhpcyBpcyBhbiBleGFtcGxl"
    );

    // A waiting poll acknowledges the verification and wakes when the session is revoked.
    let tokens = sign_in(&server, "erin@example.com").await;
    let sid = session_of(&tokens);
    let waiting = {
        let (server_url, token, stream) = (server.base.clone(), token.clone(), stream.clone());
        let http = server.http.clone();
        let jti = jti.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let url = stream["delivery"]["endpoint_url"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(url.starts_with(&server_url));
            let answer: Value = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "ack": [jti] }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    sign_out(&server, &tokens).await;
    let (answer, waited) = waiting.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "the poll answered when the event came, not at its timeout: {waited:?}"
    );
    let sets = answer["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "the verification was acknowledged: {answer}");
    let (jti, set) = sets.iter().next().unwrap();
    let claims = set_claims(&server, set, "receiver").await;
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["aud"], "receiver");
    assert_eq!(
        claims["sub_id"],
        json!({
            "format": "complex",
            "user": { "format": "iss_sub", "iss": server.base, "sub": user.id },
            "session": { "format": "opaque", "id": sid },
        })
    );
    let event = &claims["events"][SESSION_REVOKED];
    assert_eq!(event["initiating_entity"], "user");
    assert!(event["event_timestamp"].as_i64().is_some());
    assert!(event["reason_admin"]["en"].as_str().is_some());

    // Acknowledged, it is gone; nothing else waits.
    let (sets, _) = poll(
        &server,
        &token,
        &stream,
        json!({ "ack": [jti], "returnImmediately": true }),
    )
    .await;
    assert_eq!(sets, json!({}));
}

async fn events_wait_in_the_outbox(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let token = receiver(&server, "receiver").await;
    let stream = create_stream(&server, &token).await;
    let stream_id = stream["stream_id"].as_str().unwrap();
    let set_status = |status: &'static str| {
        let body = json!({ "stream_id": stream_id, "status": status });
        call(
            &server,
            reqwest::Method::POST,
            "/ssf/status",
            Some(&token),
            Some(body),
        )
    };

    // Paused: kept for later, and a poll waits for nothing.
    set_status("paused").await;
    let first = sign_in(&server, "erin@example.com").await;
    sign_out(&server, &first).await;
    let (sets, _) = poll(&server, &token, &stream, json!({})).await;
    assert_eq!(sets, json!({}), "nothing is delivered while paused");
    set_status("enabled").await;

    // Another replica on the same database delivers what this one wrote.
    let replica = server.replica().await;
    let (sets, more) = poll(
        &replica,
        &token,
        &stream,
        json!({ "maxEvents": 5, "returnImmediately": true }),
    )
    .await;
    let jtis: Vec<&String> = sets.as_object().unwrap().keys().collect();
    assert_eq!(jtis.len(), 1, "{sets}");
    assert!(!more);
    let ack = json!({ "ack": jtis, "maxEvents": 0 });
    poll(&replica, &token, &stream, ack).await;

    // Disabled: nothing is kept.
    set_status("disabled").await;
    let second = sign_in(&server, "erin@example.com").await;
    sign_out(&server, &second).await;
    set_status("enabled").await;
    let (sets, _) = poll(
        &server,
        &token,
        &stream,
        json!({ "returnImmediately": true }),
    )
    .await;
    assert_eq!(sets, json!({}), "nothing was kept while disabled");

    // maxEvents, and moreAvailable.
    for _ in 0..3 {
        let t = sign_in(&server, "erin@example.com").await;
        sign_out(&server, &t).await;
    }
    let (sets, more) = poll(
        &server,
        &token,
        &stream,
        json!({ "maxEvents": 2, "returnImmediately": true }),
    )
    .await;
    assert_eq!(sets.as_object().unwrap().len(), 2);
    assert!(more);
}

async fn global_token_revocation_ends_every_session_of_a_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("erin@example.com", Role::User).await;
    server.add_user("fred@example.com", Role::User).await;
    let token = receiver(&server, "receiver").await;
    let stream = create_stream(&server, &token).await;
    let laptop = sign_in(&server, "erin@example.com").await;
    let phone = sign_in(&server, "erin@example.com").await;
    let fred = sign_in(&server, "fred@example.com").await;

    let tool_secret = server
        .add_service("security-tool", &["global_token_revocation"])
        .await;
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "security-tool"),
                ("client_secret", &tool_secret),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tool = body["access_token"].as_str().unwrap().to_string();
    let meta: Value = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["global_token_revocation_endpoint"],
        server.url("/global-token-revocation")
    );

    let email = json!({ "format": "email", "email": "Erin@Example.com" });
    let (status, body) = revoke_all(&server, &token, email.clone()).await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = revoke_all(
        &server,
        laptop["access_token"].as_str().unwrap(),
        email.clone(),
    )
    .await;
    assert_error(status, &body, 403, "insufficient_scope");
    let (status, body) = revoke_all(
        &server,
        &tool,
        json!({ "format": "phone_number", "phone_number": "+1" }),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = revoke_all(
        &server,
        &tool,
        json!({ "format": "iss_sub", "iss": "https://elsewhere.example", "sub": user.id }),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, _) = revoke_all(
        &server,
        &tool,
        json!({ "format": "email", "email": "nobody@example.com" }),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = revoke_all(&server, &tool, email).await;
    assert_eq!(status, 204);
    for device in [&laptop, &phone] {
        let (status, body) = server
            .refresh(device["refresh_token"].as_str().unwrap())
            .await;
        assert_error(status, &body, 400, "invalid_grant");
    }
    let (status, _) = server
        .refresh(fred["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "another user is untouched");

    // Receivers hear of both sessions, ended by an administrator's tool.
    let (sets, _) = poll(
        &server,
        &token,
        &stream,
        json!({ "returnImmediately": true }),
    )
    .await;
    let sets = sets.as_object().unwrap();
    assert_eq!(sets.len(), 2, "{sets:?}");
    for set in sets.values() {
        let claims = set_claims(&server, set, "receiver").await;
        assert_eq!(claims["sub_id"]["user"]["sub"], user.id);
        let event = &claims["events"][SESSION_REVOKED];
        assert_eq!(event["initiating_entity"], "admin");
        assert_eq!(event["reason_admin"]["en"], "global_token_revocation");
    }
    // By iss_sub too, and with nothing left to end: still done.
    let (status, _) = revoke_all(
        &server,
        &tool,
        json!({ "format": "iss_sub", "iss": server.base, "sub": user.id }),
    )
    .await;
    assert_eq!(status, 204);
}

/// A receiver's push endpoint on 127.0.0.1: records each SET it takes with its headers, and
/// answers 503 (counting the attempt) while `down`.
struct PushReceiver {
    url: String,
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    attempts: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

async fn push_receiver() -> PushReceiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (g, a, d) = (got.clone(), attempts.clone(), down.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, a, d) = (g.clone(), a.clone(), d.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock().unwrap().push((headers, body));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    PushReceiver {
        url,
        got,
        attempts,
        down,
    }
}

/// Waits until the receiver holds `n` SETs; those SETs.
async fn pushed(
    rx: &PushReceiver,
    n: usize,
    within: Duration,
) -> Vec<(axum::http::HeaderMap, String)> {
    let started = Instant::now();
    loop {
        let got = rx.got.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < within,
            "{} of {n} SETs pushed within {within:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_push_receiver_gets_its_events_when_it_is_back(backend: Backend) {
    let server = TestServer::with(backend, |s| s.ssf.allow_http_loopback_push = true).await;
    server.add_user("erin@example.com", Role::User).await;
    let token = receiver(&server, "receiver").await;
    let rx = push_receiver().await;
    let (status, stream) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/streams",
        Some(&token),
        Some(json!({
            "delivery": {
                "method": PUSH,
                "endpoint_url": rx.url,
                "authorization_header": "Bearer rx-secret-4711",
            },
            "events_requested": [SESSION_REVOKED],
        })),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    assert_eq!(
        stream["delivery"],
        json!({ "method": PUSH, "endpoint_url": rx.url })
    );
    let stream_id = stream["stream_id"].as_str().unwrap();
    let sealed: Vec<u8> = sqlx::Row::get(
        &sqlx::query("SELECT authorization_header FROM ssf_streams")
            .fetch_one(server.db.read())
            .await
            .unwrap(),
        0,
    );
    assert!(
        !sealed.windows(4).any(|w| w == b"4711"),
        "the receiver's header is not kept in the clear"
    );

    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/verify",
        Some(&token),
        Some(json!({ "stream_id": stream_id, "state": "s1" })),
    )
    .await;
    assert_eq!(status, 204);
    let got = pushed(&rx, 1, Duration::from_secs(5)).await;
    let (headers, set) = &got[0];
    assert_eq!(headers["content-type"], "application/secevent+jwt");
    assert_eq!(headers["authorization"], "Bearer rx-secret-4711");
    let claims = set_claims(&server, &json!(set), "receiver").await;
    assert_eq!(claims["events"][VERIFICATION]["state"], "s1");

    // The receiver is down when a session is revoked: the event waits, and is pushed again.
    rx.down.store(true, Ordering::SeqCst);
    let tokens = sign_in(&server, "erin@example.com").await;
    let sid = session_of(&tokens);
    sign_out(&server, &tokens).await;
    let started = Instant::now();
    while rx.attempts.load(Ordering::SeqCst) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the push was tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rx.got.lock().unwrap().len(), 1);
    rx.down.store(false, Ordering::SeqCst);
    // Retries wait out their backoff on the server's clock: a second for the first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.got.lock().unwrap().len(), 1, "not before its backoff");
    server.clock.advance(Duration::from_secs(1));
    let got = pushed(&rx, 2, Duration::from_secs(5)).await;
    let claims = set_claims(&server, &json!(got[1].1), "receiver").await;
    assert_eq!(claims["sub_id"]["session"]["id"], sid);
    // Taken: it leaves the outbox, and is not pushed again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.got.lock().unwrap().len(), 2);
}

async fn push_endpoints_stay_out_of_private_networks(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = receiver(&server, "receiver").await;
    for url in [
        "http://127.0.0.1:9/events",
        "https://127.0.0.1/events",
        "https://10.0.0.1/events",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/events",
        "https://localhost/events",
        "https://user:pw@receiver.example.com/events",
        "not a url",
    ] {
        let (status, body) = call(
            &server,
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&token),
            Some(json!({ "delivery": { "method": PUSH, "endpoint_url": url } })),
        )
        .await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/ssf/streams",
        Some(&token),
        Some(json!({ "delivery": { "method": PUSH } })),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (_, all) = call(
        &server,
        reqwest::Method::GET,
        "/ssf/streams",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(all, json!([]), "nothing was created");
}

/// `POST /global-token-revocation` for `sub_id` with a bearer token.
async fn revoke_all(server: &TestServer, token: &str, sub_id: Value) -> (u16, Value) {
    let body = json!({ "sub_id": sub_id });
    call(
        server,
        reqwest::Method::POST,
        "/global-token-revocation",
        Some(token),
        Some(body),
    )
    .await
}

both_backends!(
    a_push_receiver_gets_its_events_when_it_is_back,
    push_endpoints_stay_out_of_private_networks,
    global_token_revocation_ends_every_session_of_a_user,
    a_receiver_manages_its_streams,
    a_revoked_session_reaches_the_receiver_as_a_signed_event,
    events_wait_in_the_outbox,
);
