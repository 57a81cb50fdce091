//! Rotation, families, reuse detection, the grace window, lifetimes and the session limit.

use std::collections::HashSet;
use std::time::Duration;

use latchkeyd::store::users::Role;
use latchkeyd::store::{chains, events, revocation};
use serde_json::Value;
use sqlx::Row;

use crate::both_backends;
use crate::common::*;
use latchkeyd::store::events::{EventKind, Severity};
use latchkeyd::store::sessions::LinkState;

/// A family's live tokens: its session's head, while the session is not revoked.
async fn live_tokens(server: &TestServer, session: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM sessions s JOIN refresh_tokens t ON t.id = s.head_token_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL",
    )
    .bind(session)
    .fetch_one(server.db.read())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

/// Which of `tokens` the server would take (introspection's view).
async fn accepted(server: &TestServer, tokens: &[String]) -> Vec<String> {
    let mut live = Vec::new();
    for token in tokens {
        let info = revocation::refresh_token_info(&server.db, token, server.clock.now_ms())
            .await
            .unwrap()
            .expect("every token the server issued is known");
        if info.active {
            live.push(token.clone());
        }
    }
    live
}

async fn every_refresh_rotates_and_the_chain_is_kept(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let tokens = sign_in(&server, "ann@example.com").await;
    let session = session_of(&tokens);
    let mut seen = HashSet::new();
    let mut current = tokens["refresh_token"].as_str().unwrap().to_string();
    seen.insert(current.clone());
    let mut issued = vec![current.clone()];
    for _ in 0..5 {
        server.clock.advance(Duration::from_secs(60));
        let (status, body) = server.refresh(&current).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("id_token").is_none());
        assert_eq!(session_of(&body), session, "the same session and family");
        current = body["refresh_token"].as_str().unwrap().to_string();
        assert!(
            seen.insert(current.clone()),
            "every refresh returns a new token"
        );
        issued.push(current.clone());
        assert_eq!(live_tokens(&server, &session).await, 1);
        assert_eq!(
            accepted(&server, &issued).await,
            vec![current.clone()],
            "only the newest token is live"
        );
    }
    let chain = chains::chain(&server.db, &session).await.unwrap();
    assert_eq!(chain.len(), 6);
    for (i, link) in chain.iter().enumerate() {
        assert_eq!(link.generation, i as i64 + 1);
        assert_eq!(link.parent_generation, (i > 0).then_some(i as i64));
        assert_eq!(link.issued_ip.as_deref(), Some("127.0.0.1"));
        if i < 5 {
            assert_eq!(link.state, LinkState::Rotated);
            assert!(link.used_at.is_some());
            assert_eq!(link.used_ip.as_deref(), Some("127.0.0.1"));
        } else {
            assert_eq!(link.state, LinkState::Active);
        }
    }
    // A narrower scope may be asked for; a wider one may not.
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "latchkey-desktop"),
                ("refresh_token", &current),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "openid");
    let current = body["refresh_token"].as_str().unwrap();
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "latchkey-desktop"),
                ("refresh_token", current),
                ("scope", "openid admin"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, _) = server.refresh(current).await;
    assert_eq!(status, 200, "a refused scope does not spend the token");
}

async fn a_replayed_token_revokes_the_whole_family(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ben@example.com", Role::User).await;
    let tokens = sign_in(&server, "ben@example.com").await;
    let session = session_of(&tokens);
    let first = tokens["refresh_token"].as_str().unwrap();
    let (_, second) = server.refresh(first).await;
    let (status, third) = server
        .refresh(second["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);

    // The thief replays the first token.
    let (status, body) = server.refresh(first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));
    // The whole family is dead: the newest token, and its access tokens as far as we answer.
    let (status, _) = server
        .refresh(third["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    assert_eq!(live_tokens(&server, &session).await, 0);
    assert_eq!(
        userinfo_status(&server, third["access_token"].as_str().unwrap()).await,
        401
    );
    let res = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(third["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let events = events::for_session(&server.db, &session).await.unwrap();
    let reuse = events
        .iter()
        .find(|e| e.kind == EventKind::ReuseDetected)
        .expect("a reuse_detected event");
    assert_eq!(reuse.severity, Severity::High);
    assert_eq!(reuse.details["replayed_generation"], 1);
    assert_eq!(reuse.details["current_generation"], 3);
    assert_eq!(reuse.details["retired_by_ip"], "127.0.0.1");
    assert!(reuse.details["retired_at"].is_i64());
    // Replaying into the dead family again is recorded as such, not as a second theft.
    assert_eq!(server.refresh(first).await.0, 400);
    let events = events::for_session(&server.db, &session).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::ReuseDetected)
            .count(),
        1
    );
    assert!(events.iter().any(|e| e.kind == EventKind::RevokedTokenUsed));
    let revoked = sqlx::query("SELECT revoked_by, revoke_reason FROM sessions WHERE id = $1")
        .bind(&session)
        .fetch_one(server.db.read())
        .await
        .unwrap();
    assert_eq!(
        revoked.try_get::<String, _>("revoke_reason").unwrap(),
        "reuse_detected"
    );
    // Other sessions of the same account are untouched.
    let other = sign_in(&server, "ben@example.com").await;
    assert_eq!(
        server
            .refresh(other["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
}

/// The statuses of `n` refreshes with one token, all sent at once, in ascending order.
async fn refresh_at_once(server: &TestServer, token: &str, n: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let http = server.http.clone();
        let url = server.url("/token");
        let token = token.to_string();
        tasks.spawn(async move {
            http.post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "latchkey-desktop"),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses.sort();
    statuses
}

async fn a_hundred_concurrent_refreshes_give_one_success(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("cat@example.com", Role::User).await;
    let tokens = sign_in(&server, "cat@example.com").await;
    let token = tokens["refresh_token"].as_str().unwrap().to_string();
    let statuses = refresh_at_once(&server, &token, 100).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        99,
        "{statuses:?}"
    );
    assert!(live_tokens(&server, &session_of(&tokens)).await <= 1);
}

async fn the_grace_window_forgives_one_lost_response(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.tokens.reuse_grace_secs = 10;
        s.tokens.reuse_grace_max_replays = 2;
    })
    .await;
    server.add_user("dan@example.com", Role::User).await;
    let tokens = sign_in(&server, "dan@example.com").await;
    let session = session_of(&tokens);
    let a = tokens["refresh_token"].as_str().unwrap().to_string();
    let (_, lost) = server.refresh(&a).await; // the response never reached the client
    let lost = lost["refresh_token"].as_str().unwrap().to_string();

    server.clock.advance(Duration::from_secs(3));
    let (status, retry) = server.refresh(&a).await;
    assert_eq!(
        status, 200,
        "the immediately previous token is accepted in the window"
    );
    assert_eq!(
        live_tokens(&server, &session).await,
        1,
        "never two live tokens"
    );
    let (status, _) = server.refresh(&a).await;
    assert_eq!(status, 200, "a second replay within the bound");
    assert_eq!(live_tokens(&server, &session).await, 1);
    let (status, _) = server.refresh(&a).await;
    assert_eq!(status, 400, "past the bound, a replay is reuse");
    assert_eq!(live_tokens(&server, &session).await, 0);
    let (status, _) = server
        .refresh(retry["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    let _ = lost;

    // A replay is assessed like any refresh: one from another network and other software,
    // within the window, is the same token in two places.
    let refresh_as = |token: String, user_agent: &'static str| {
        let req = server
            .http
            .post(server.url("/token"))
            .header("user-agent", user_agent)
            .form(&[
                ("grant_type", "refresh_token".to_string()),
                ("client_id", "latchkey-desktop".to_string()),
                ("refresh_token", token),
            ]);
        async move {
            let res = req.send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let tokens = sign_in(&server, "dan@example.com").await;
    let session = session_of(&tokens);
    let (_, b) = refresh_as(
        tokens["refresh_token"].as_str().unwrap().into(),
        "latchkey/0.1.0",
    )
    .await;
    let b = b["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh_as(b.clone(), "latchkey/0.1.0").await.0, 200);
    let (status, _) = refresh_as(b, "curl/8.5.0").await;
    assert_eq!(status, 200, "a replay within the window");
    let signals = latchkeyd::store::events::open_signals_of_session(&server.db, &session)
        .await
        .unwrap();
    assert!(
        signals
            .iter()
            .any(|e| e.kind == EventKind::UserAgentChanged),
        "{signals:?}"
    );

    // The window runs from the token's first use, not from its last replay.
    let tokens = sign_in(&server, "dan@example.com").await;
    let session = session_of(&tokens);
    let a = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(server.refresh(&a).await.0, 200);
    server.clock.advance(Duration::from_secs(3));
    assert_eq!(server.refresh(&a).await.0, 200, "a replay in the window");
    server.clock.advance(Duration::from_secs(8));
    assert_eq!(
        server.refresh(&a).await.0,
        400,
        "11 s after its first use, even 8 s after the last replay"
    );
    assert_eq!(live_tokens(&server, &session).await, 0);

    // After the window, the first replay already kills the family.
    let tokens = sign_in(&server, "dan@example.com").await;
    let session = session_of(&tokens);
    let a = tokens["refresh_token"].as_str().unwrap().to_string();
    server.refresh(&a).await;
    server.clock.advance(Duration::from_secs(11));
    assert_eq!(server.refresh(&a).await.0, 400);
    assert_eq!(live_tokens(&server, &session).await, 0);

    // A replay of an older generation than the immediately previous one is reuse at once.
    let tokens = sign_in(&server, "dan@example.com").await;
    let a = tokens["refresh_token"].as_str().unwrap().to_string();
    let (_, b) = server.refresh(&a).await;
    let (_, c) = server.refresh(b["refresh_token"].as_str().unwrap()).await;
    assert_eq!(server.refresh(&a).await.0, 400);
    assert_eq!(
        server.refresh(c["refresh_token"].as_str().unwrap()).await.0,
        400
    );
}

/// Many requests with one token at once, with a grace window: they take turns on the session,
/// so each is answered (never a server error, never a deadlock between them), the bound on
/// replays holds, and the one past it revokes the family.
async fn concurrent_replays_within_the_grace_window_take_turns(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.tokens.reuse_grace_secs = 10;
        s.tokens.reuse_grace_max_replays = 2;
    })
    .await;
    server.add_user("gil@example.com", Role::User).await;
    let tokens = sign_in(&server, "gil@example.com").await;
    let session = session_of(&tokens);
    let token = tokens["refresh_token"].as_str().unwrap().to_string();
    let statuses = refresh_at_once(&server, &token, 20).await;
    let mut expected = vec![200; 3];
    expected.extend([400; 17]);
    assert_eq!(statuses, expected, "one rotation, two replays, then reuse");
    assert_eq!(live_tokens(&server, &session).await, 0);
    let events = events::for_session(&server.db, &session).await.unwrap();
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(EventKind::GraceReplay), 2);
    assert_eq!(count(EventKind::ReuseDetected), 1);
}

async fn families_expire_when_idle_and_at_their_absolute_lifetime(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("eve@example.com", Role::User).await;
    let day = Duration::from_secs(24 * 3600);

    // Idle for 14 days and a second: expired.
    let tokens = sign_in(&server, "eve@example.com").await;
    server.clock.advance(day * 14 + Duration::from_secs(1));
    let (status, body) = server
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // Used every 10 days: rotation never extends the 30-day absolute lifetime.
    let tokens = sign_in(&server, "eve@example.com").await;
    let mut current = tokens["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        server.clock.advance(day * 10);
        let (status, body) = server.refresh(&current).await;
        assert_eq!(status, 200);
        current = body["refresh_token"].as_str().unwrap().to_string();
        assert!(body["refresh_token_expires_in"].as_i64().unwrap() <= 30 * 24 * 3600);
    }
    server.clock.advance(day * 10 + Duration::from_secs(1));
    let (status, _) = server.refresh(&current).await;
    assert_eq!(status, 400, "30 days after sign-in the family is over");
}

async fn the_session_limit_evicts_the_least_recently_used(backend: Backend) {
    let server = TestServer::with(backend, |s| s.tokens.max_sessions_per_user = 2).await;
    let user = server.add_user("fay@example.com", Role::User).await;
    let first = sign_in(&server, "fay@example.com").await;
    server.clock.advance(Duration::from_secs(1));
    let second = sign_in(&server, "fay@example.com").await;
    server.clock.advance(Duration::from_secs(1));
    // Using the first makes the second the least recently used.
    let (status, first) = server
        .refresh(first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    server.clock.advance(Duration::from_secs(1));
    let _third = sign_in(&server, "fay@example.com").await;
    assert_eq!(
        server
            .refresh(second["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );
    assert_eq!(
        server
            .refresh(first["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let evicted = events::for_session(&server.db, &session_of(&second))
        .await
        .unwrap();
    let event = evicted
        .iter()
        .find(|e| e.kind == EventKind::SessionEvicted)
        .expect("the eviction is recorded");
    assert_eq!(event.user_id.as_deref(), Some(user.id.as_str()));
}

async fn refresh_tokens_belong_to_their_client(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("gus@example.com", Role::User).await;
    server.add_other_app().await;
    let tokens = sign_in(&server, "gus@example.com").await;
    let token = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "other-app"),
                ("refresh_token", token),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Nor may another client revoke it (RFC 7009 §2.1).
    let (status, body) = server
        .post_form("/revoke", &[("client_id", "other-app"), ("token", token)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    assert_eq!(
        server.refresh(token).await.0,
        200,
        "the wrong client did not spend or revoke the token"
    );
}

/// After a full flow, neither the database file nor its WAL holds any token, code or secret.
async fn nothing_secret_is_stored_in_the_clear(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("hal@example.com", Role::User).await;
    let creds = resource_server(&server).await;
    let mut secrets = vec![creds.1.clone(), PASSWORD.to_string()];
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    secrets.push(hidden(&page, "csrf_token").unwrap());
    let res = submit_form(&server, &browser, &page, "hal@example.com", PASSWORD).await;
    let code = query_param(res.headers()["location"].to_str().unwrap(), "code").unwrap();
    secrets.push(code.clone());
    let (_, tokens) = exchange(&server, &code, &signin.pkce.verifier).await;
    secrets.push(signin.pkce.verifier.clone());
    let mut current = tokens["refresh_token"].as_str().unwrap().to_string();
    secrets.push(current.clone());
    secrets.push(tokens["access_token"].as_str().unwrap().to_string());
    for _ in 0..3 {
        let (_, body) = server.refresh(&current).await;
        current = body["refresh_token"].as_str().unwrap().to_string();
        secrets.push(current.clone());
        secrets.push(body["access_token"].as_str().unwrap().to_string());
    }
    let dump: Vec<u8> = match backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = format!("{}{suffix}", server.sqlite_path().display());
                bytes.extend(std::fs::read(&path).unwrap_or_default());
            }
            assert!(bytes.len() > 10_000, "the database was read");
            bytes
        }
        Backend::Postgres => {
            // Every text and bytea value of every table, as PostgreSQL stores it.
            let tables = sqlx::query("SELECT CAST(tablename AS TEXT) AS tablename FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(server.db.read())
                .await
                .unwrap();
            let mut bytes = Vec::new();
            for t in tables {
                let name: String = t.try_get("tablename").unwrap();
                let rows = sqlx::query(&format!("SELECT CAST(t AS TEXT) AS row FROM {name} t"))
                    .fetch_all(server.db.read())
                    .await
                    .unwrap();
                for r in rows {
                    bytes.extend(r.try_get::<String, _>("row").unwrap().into_bytes());
                }
            }
            bytes
        }
    };
    for secret in &secrets {
        // Check the token body without its prefix too: no encoding of it may be stored.
        let core = secret.get(5..).unwrap_or(secret);
        assert!(
            !dump.windows(core.len()).any(|w| w == core.as_bytes()),
            "a secret was found in the database: {}…",
            &secret[..8]
        );
    }
}

/// Many families refreshing at once (on SQLite they are committed in batches): each family
/// advances by exactly one generation per refresh and keeps exactly one live token.
async fn concurrent_families_each_rotate_correctly(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ida@example.com", Role::User).await;
    let mut families = Vec::new();
    for _ in 0..12 {
        let t = sign_in(&server, "ida@example.com").await;
        families.push((
            session_of(&t),
            t["refresh_token"].as_str().unwrap().to_string(),
        ));
    }
    let mut seen = HashSet::new();
    for _ in 0..4 {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (_, token)) in families.iter().enumerate() {
            let http = server.http.clone();
            let url = server.url("/token");
            let token = token.clone();
            tasks.spawn(async move {
                let res = http
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", "latchkey-desktop"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                (i, res.json::<Value>().await.unwrap())
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, body) = done.unwrap();
            assert_eq!(
                session_of(&body),
                families[i].0,
                "the successor belongs to the same family"
            );
            let next = body["refresh_token"].as_str().unwrap().to_string();
            assert!(seen.insert(next.clone()));
            families[i].1 = next;
        }
    }
    for (session, token) in &families {
        assert_eq!(live_tokens(&server, session).await, 1);
        let chain = chains::chain(&server.db, session).await.unwrap();
        let generations: Vec<i64> = chain.iter().map(|l| l.generation).collect();
        assert_eq!(generations, vec![1, 2, 3, 4, 5]);
        assert_eq!(server.refresh(token).await.0, 200);
    }
}

/// A token carries its row id; knowing (or guessing) the id of someone's retired token without
/// its secret must not let anyone trigger reuse detection and kill their family.
async fn a_forged_secret_is_unknown_and_revokes_nothing(backend: Backend) {
    use base64::Engine;
    let server = TestServer::start(backend).await;
    server.add_user("jay@example.com", Role::User).await;
    let tokens = sign_in(&server, "jay@example.com").await;
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let (_, second) = server.refresh(&first).await;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for victim in [&first, second["refresh_token"].as_str().unwrap()] {
        let mut raw = engine.decode(&victim[5..]).unwrap();
        raw[8..].copy_from_slice(&[7u8; 32]); // same row id, another secret
        let forged = format!("lkrt_{}", engine.encode(raw));
        let (status, body) = server.refresh(&forged).await;
        assert_eq!(
            (status, body["error_description"].as_str()),
            (400, Some("the grant is not recognised"))
        );
    }
    let session = session_of(&tokens);
    assert_eq!(
        live_tokens(&server, &session).await,
        1,
        "the family is untouched"
    );
    assert!(events::for_session(&server.db, &session)
        .await
        .unwrap()
        .iter()
        .all(|e| e.kind != EventKind::ReuseDetected));
    assert_eq!(
        server
            .refresh(second["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
}

/// A family's live token is its session's head, not a flag on the token: a token row the
/// server never made the head (written into the database behind its back, say) is never live,
/// even with a correct secret, and presenting it counts as a replay.
async fn only_the_sessions_head_is_live(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("eve@example.com", Role::User).await;
    let tokens = sign_in(&server, "eve@example.com").await;
    let session = session_of(&tokens);
    let (status, body) = server
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
    let current = body["refresh_token"].as_str().unwrap().to_string();
    let (secret, secret_hash) = latchkeyd::secret::new_refresh_secret();
    // It even claims the session's current generation.
    let row = sqlx::query(
        "INSERT INTO refresh_tokens (secret_hash, session_id, generation, issued_at, expires_at) \
         SELECT $1, id, generation, $3, $4 FROM sessions WHERE id = $2 RETURNING id",
    )
    .bind(secret_hash)
    .bind(&session)
    .bind(server.clock.now_ms())
    .bind(server.clock.now_ms() + 3_600_000)
    .fetch_one(server.db.write())
    .await
    .unwrap();
    let planted = latchkeyd::secret::refresh_token(row.try_get("id").unwrap(), &secret);
    let planted = planted.expose().to_string();
    assert_eq!(
        accepted(&server, &[current.clone(), planted.clone()]).await,
        vec![current.clone()]
    );
    let (status, body) = server.refresh(&planted).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(live_tokens(&server, &session).await, 0);
    let (status, _) = server.refresh(&current).await;
    assert_eq!(status, 400, "the family is revoked");
}

/// Refreshes are written in batches. One whose writes the database refuses fails alone: a
/// refresh batched with it is still rotated, and nothing of the failed one stays, so its token
/// works once the database takes its writes again.
async fn a_refresh_that_cannot_be_written_fails_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("fay@example.com", Role::User).await;
    server.add_user("gus@example.com", Role::User).await;
    let fay = sign_in(&server, "fay@example.com").await;
    let gus = sign_in(&server, "gus@example.com").await;
    let doomed = session_of(&fay);
    let refuse = match backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON refresh_tokens WHEN NEW.session_id = '{doomed}' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.session_id = '{doomed}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            ),
            "CREATE TRIGGER refuse BEFORE INSERT ON refresh_tokens FOR EACH ROW EXECUTE FUNCTION refuse()"
                .into(),
        ],
    };
    for sql in &refuse {
        sqlx::raw_sql(sql).execute(server.db.write()).await.unwrap();
    }
    let fay_token = fay["refresh_token"].as_str().unwrap();
    let ((failed, body), (rotated, _)) = tokio::join!(
        server.refresh(fay_token),
        server.refresh(gus["refresh_token"].as_str().unwrap())
    );
    assert_eq!(failed, 500, "{body}");
    assert_eq!(body["error"], "server_error", "{body}");
    assert_eq!(rotated, 200, "the other refresh is not failed with it");
    let drop = match backend {
        Backend::Sqlite => "DROP TRIGGER refuse",
        Backend::Postgres => "DROP TRIGGER refuse ON refresh_tokens",
    };
    sqlx::raw_sql(drop)
        .execute(server.db.write())
        .await
        .unwrap();
    let (status, body) = server.refresh(fay_token).await;
    assert_eq!(
        status, 200,
        "the failed refresh left nothing behind: {body}"
    );
    let chain = chains::chain(&server.db, &doomed).await.unwrap();
    let states: Vec<_> = chain.iter().map(|l| l.state.as_str()).collect();
    assert_eq!(states, ["rotated", "active"]);
    let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id = $1")
        .bind(&doomed)
        .fetch_one(server.db.read())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(rows, 2, "no token of the failed attempt is left");
}

both_backends!(
    a_refresh_that_cannot_be_written_fails_alone,
    only_the_sessions_head_is_live,
    a_forged_secret_is_unknown_and_revokes_nothing,
    concurrent_families_each_rotate_correctly,
    every_refresh_rotates_and_the_chain_is_kept,
    a_replayed_token_revokes_the_whole_family,
    a_hundred_concurrent_refreshes_give_one_success,
    the_grace_window_forgives_one_lost_response,
    concurrent_replays_within_the_grace_window_take_turns,
    families_expire_when_idle_and_at_their_absolute_lifetime,
    the_session_limit_evicts_the_least_recently_used,
    refresh_tokens_belong_to_their_client,
    nothing_secret_is_stored_in_the_clear,
);
