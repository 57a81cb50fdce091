//! The consumer side: notes-api behind latchkey-guard, with a real latchkeyd. A revoked session's
//! access token, though unexpired, is refused at the API within a second.

use std::time::{Duration, Instant};

use latchkey_client::dpop::DeviceKey;
use latchkey_guard::{Guard, GuardConfig, Revocations};
use latchkeyd::store::users::Role;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::*;
use crate::dpop::{ath, bound_sign_in, proof};

/// notes-api on 127.0.0.1:0 behind a guard of its own service account; its base URL.
struct NotesApi {
    base: String,
    guard: Guard,
    secret: String,
    _dir: tempfile::TempDir,
    /// The API stops when this drops, as its process would.
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn notes_api(server: &TestServer, tweak: impl FnOnce(&mut GuardConfig)) -> NotesApi {
    notes_api_for(server, &["ssf"], |config, _| tweak(config)).await
}

/// notes-api whose service account is registered for `scopes`; `tweak` also gets the API's own
/// base URL, for a push endpoint.
async fn notes_api_for(
    server: &TestServer,
    scopes: &[&str],
    tweak: impl FnOnce(&mut GuardConfig, &str),
) -> NotesApi {
    let secret = server.add_service("notes-api", scopes).await;
    // Listening first, as notes-api's main does: a pushing latchkeyd may call at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = GuardConfig::new(&server.base, "notes-api", &secret);
    tweak(&mut config, &base);
    let guard = Guard::start(config).await.expect("the guard starts");
    let dir = tempfile::tempdir().unwrap();
    let db = notes_api::Notes::open(dir.path().join("notes.db")).unwrap();
    let app = notes_api::router(notes_api::AppState {
        guard: guard.clone(),
        db,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    NotesApi {
        base,
        guard,
        secret,
        _dir: dir,
        _stop: stop,
    }
}

/// Waits until the guard's feed is current, as `/healthz` reports it.
async fn until_current(api: &NotesApi, limit: Duration) {
    let started = Instant::now();
    loop {
        let res = reqwest::get(format!("{}/healthz", api.base)).await.unwrap();
        if res.status() == 200 {
            let health: Value = res.json().await.unwrap();
            assert_eq!(health["feed_current"], true, "{health}");
            return;
        }
        assert!(
            started.elapsed() < limit,
            "the feed is not current after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn push_to(config: &mut GuardConfig, base: &str) {
    config.revocations = Revocations::Push {
        url: format!("{base}/ssf/events"),
    };
}

async fn pushing_server(backend: Backend) -> TestServer {
    TestServer::with(backend, |s| s.ssf.allow_http_loopback_push = true).await
}

async fn get_notes(api: &NotesApi, token: &str) -> (u16, Value, String) {
    let res = reqwest::Client::new()
        .get(format!("{}/notes", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, res.json().await.unwrap_or(Value::Null), challenge)
}

/// Calls `GET /notes` until it is refused; how long that took.
async fn refused_within(api: &NotesApi, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, challenge) = get_notes(api, token).await;
        if status == 401 {
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            return started.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < limit,
            "still accepted {limit:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_revoked_session_is_refused_at_the_api_within_a_second(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = notes_api(&server, |_| {}).await;
    let laptop = sign_in(&server, "erin@example.com").await;
    let phone = sign_in(&server, "erin@example.com").await;
    let token = laptop["access_token"].as_str().unwrap();

    let (status, body, _) = get_notes(&api, token).await;
    assert_eq!((status, body), (200, json!({ "notes": [] })));
    let res = reqwest::Client::new()
        .post(format!("{}/notes", api.base))
        .bearer_auth(token)
        .json(&json!({ "text": "buy milk" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (_, body, _) = get_notes(&api, token).await;
    assert_eq!(body["notes"][0]["text"], "buy milk");

    // The user signs the laptop out (RFC 7009): its access token still has minutes to live.
    sign_out(&server, &laptop).await;
    let took = refused_within(&api, token, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(api.guard.health().revoked_sessions, 1);

    // The phone's session is another: its notes (the same person's) are still there.
    let (status, body, _) = get_notes(&api, phone["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["notes"][0]["text"], "buy milk");

    // A replayed refresh token kills the phone's family; its access token goes with it.
    let (status, rotated) = server
        .refresh(phone["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{rotated}");
    let (status, _) = server
        .refresh(phone["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400, "the replay is refused");
    refused_within(
        &api,
        rotated["access_token"].as_str().unwrap(),
        Duration::from_secs(1),
    )
    .await;
}

async fn the_guard_checks_every_token_and_proof(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = notes_api(&server, |_| {}).await;
    let http = reqwest::Client::new();
    let notes = format!("{}/notes", api.base);

    let res = http.get(&notes).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (status, _, challenge) = get_notes(&api, "not-a-jwt").await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // A service account's own token is nobody's: no notes for it.
    let (status, service) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "notes-api"),
                ("client_secret", &api.secret),
            ],
        )
        .await;
    assert_eq!(status, 200, "{service}");
    let (status, body, _) = get_notes(&api, service["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 403, "{body}");

    // A DPoP-bound token: only as DPoP, with a fresh proof of its key for this request.
    let key = DeviceKey::generate();
    let tokens = bound_sign_in(&server, "erin@example.com", &key).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (status, _, challenge) = get_notes(&api, token).await;
    assert_eq!(status, 401, "a bound token is no bearer token");
    assert!(challenge.starts_with("DPoP"), "{challenge}");
    let signed = |method: &str| {
        let mut claims = proof(&server, method, "/notes");
        claims.htu = notes.clone();
        claims.ath = Some(ath(token));
        key.sign(&claims)
    };
    let send = |p: String| {
        http.get(&notes)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", p)
            .send()
    };
    let good = signed("GET");
    assert_eq!(send(good.clone()).await.unwrap().status(), 200);
    let replayed = send(good).await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(replayed.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_dpop_proof"));
    assert_eq!(send(signed("POST")).await.unwrap().status(), 401, "htm");
    let thief = DeviceKey::generate();
    let mut claims = proof(&server, "GET", "/notes");
    claims.htu = notes.clone();
    claims.ath = Some(ath(token));
    assert_eq!(
        send(thief.sign(&claims)).await.unwrap().status(),
        401,
        "another key"
    );
}

async fn a_stale_feed_fails_closed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let tokens = sign_in(&server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    // A guard that trusts its feed for no time at all is always stale.
    let closed = notes_api(&server, |c| c.max_staleness = Duration::ZERO).await;
    let res = reqwest::Client::new()
        .get(format!("{}/notes", closed.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let health = reqwest::get(format!("{}/healthz", closed.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["feed_current"], false);
}

/// No revocation for longer than the guard trusts silence: each long poll still ends in an
/// answer within latchkeyd's request timeout, so the feed stays current and tokens pass.
async fn a_quiet_feed_stays_current(backend: Backend) {
    let server = TestServer::with(backend, |s| s.limits.request_timeout_secs = 2).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = notes_api(&server, |c| c.max_staleness = Duration::from_secs(3)).await;
    let tokens = sign_in(&server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_notes(&api, token).await.0, 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body, _) = get_notes(&api, token).await;
    assert_eq!(status, 200, "refused after a quiet spell: {body}");
    assert!(api.guard.health().feed_current);
}

/// A session erin used at `api` is revoked after the API stopped; the API's client secret.
async fn revoked_while_down(server: &TestServer, api: NotesApi) -> String {
    let tokens = sign_in(server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_notes(&api, token).await.0, 200);
    let secret = api.secret.clone();
    drop(api);
    // Let the stopped API's server task let go of its guard.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sign_out(server, &tokens).await;
    secret
}

async fn a_restarted_guard_learns_what_it_missed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let first = notes_api(&server, |_| {}).await;
    // The event waits in the API's stream.
    let secret = revoked_while_down(&server, first).await;
    let config = GuardConfig::new(&server.base, "notes-api", &secret);
    let guard = Guard::start(config).await.expect("the guard starts again");
    assert_eq!(
        guard.health().revoked_sessions,
        1,
        "taken in before the first request"
    );
}

async fn pushed_revocations_reach_the_api_within_a_second(backend: Backend) {
    let server = pushing_server(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = notes_api_for(&server, &["ssf"], push_to).await;
    // Stale (503) until latchkeyd's first verification event arrives through the push.
    until_current(&api, Duration::from_secs(5)).await;
    assert_eq!(api.guard.health().revocations, "push");
    let tokens = sign_in(&server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_notes(&api, token).await.0, 200);

    sign_out(&server, &tokens).await;
    let took = refused_within(&api, token, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(api.guard.health().revoked_sessions, 1);

    // Only latchkeyd, which holds the header the guard gave its stream, may push.
    let forged = reqwest::Client::new()
        .post(format!("{}/ssf/events", api.base))
        .bearer_auth("guess")
        .header("content-type", "application/secevent+jwt")
        .body("eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["err"], "authentication_failed");
}

async fn a_restarted_pushed_guard_learns_what_it_missed(backend: Backend) {
    let server = pushing_server(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let first = notes_api_for(&server, &["ssf"], push_to).await;
    until_current(&first, Duration::from_secs(5)).await;
    // The push fails; the event waits in the stream.
    let secret = revoked_while_down(&server, first).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = GuardConfig::new(&server.base, "notes-api", &secret);
    push_to(&mut config, &base);
    let guard = Guard::start(config).await.expect("the guard starts again");
    let receiver = guard.push_receiver();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    // The waiting event is pushed before the verification event that makes the feed current.
    let started = Instant::now();
    while !guard.health().feed_current {
        assert!(started.elapsed() < Duration::from_secs(5), "never current");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(guard.health().revoked_sessions, 1);
}

/// notes-api whose guard introspects every token, its service account registered for `scopes`.
async fn introspecting(server: &TestServer, scopes: &[&str]) -> NotesApi {
    notes_api_for(server, scopes, |c, _| {
        c.revocations = Revocations::Introspect
    })
    .await
}

async fn an_introspecting_guard_asks_latchkeyd_about_each_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = introspecting(&server, &["introspection"]).await;
    let health: Value = reqwest::get(format!("{}/healthz", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["revocations"], "introspect");
    let tokens = sign_in(&server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_notes(&api, token).await.0, 200);
    let (status, _, challenge) = get_notes(&api, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "a refresh token is no access token");
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // No feed to wait for: the very next request after the revocation is refused.
    sign_out(&server, &tokens).await;
    assert_eq!(get_notes(&api, token).await.0, 401);
}

async fn introspection_needs_the_scope_for_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    // Registered for the feed only: latchkeyd shows it no other client's token.
    let api = introspecting(&server, &["ssf"]).await;
    let tokens = sign_in(&server, "erin@example.com").await;
    assert_eq!(
        get_notes(&api, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
}

/// The guard checks a token's signature once and remembers it; its expiry still counts.
async fn a_remembered_token_still_expires(backend: Backend) {
    let server = TestServer::with(backend, |s| s.tokens.access_token_ttl_secs = 1).await;
    server.add_user("erin@example.com", Role::User).await;
    let api = notes_api(&server, |_| {}).await;
    let tokens = sign_in(&server, "erin@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(get_notes(&api, token).await.0, 200);
    }
    // Past `exp` and the guard's leeway of five seconds for clocks.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, _, challenge) = get_notes(&api, token).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("expired"), "{challenge}");
}

both_backends!(
    a_remembered_token_still_expires,
    pushed_revocations_reach_the_api_within_a_second,
    a_restarted_pushed_guard_learns_what_it_missed,
    an_introspecting_guard_asks_latchkeyd_about_each_token,
    introspection_needs_the_scope_for_it,
    a_restarted_guard_learns_what_it_missed,
    a_revoked_session_is_refused_at_the_api_within_a_second,
    the_guard_checks_every_token_and_proof,
    a_stale_feed_fails_closed,
    a_quiet_feed_stays_current,
);
