//! The rotation engine at the store level: one table of cases, each a family put in a state and
//! a refresh presented to it, run through the rotation writer on SQLite and on PostgreSQL,
//! each case in a batch of its own and all cases in one batch.

use std::time::Duration;

use latchkeyd::store::audit::Actor;
use latchkeyd::store::outcome::{Outcome, Refusal};
use latchkeyd::store::rotation::{RefreshRequest, RotationPolicy, Rotator};
use latchkeyd::store::users::Role;
use latchkeyd::store::{revocation, Origin};
use latchkeyd::Settings;
use serde_json::Value;
use sqlx::Row;

use crate::both_backends;
use crate::common::*;

const GRANTED: &str = "openid profile email offline_access";
const GRACE_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// The family's live token.
    Fresh,
    /// A token two rotations old: reuse, whatever the grace window.
    Rotated,
    /// The head's parent, replayed within the grace window: forgiven.
    ReplayedInGrace,
    /// The head's parent, replayed after the grace window: reuse.
    ReplayedAfterGrace,
    /// The live token, unused past its idle lifetime.
    ExpiredIdle,
    /// The live token of a family past its absolute lifetime.
    ExpiredAbsolute,
    Revoked,
    WrongClient,
    /// A family bound to a key, presented without it.
    WrongKey,
    NarrowerScope,
    WiderScope,
    /// The right token id with a made-up secret.
    ForgedSecret,
}

const CASES: [Case; 12] = [
    Case::Fresh,
    Case::Rotated,
    Case::ReplayedInGrace,
    Case::ReplayedAfterGrace,
    Case::ExpiredIdle,
    Case::ExpiredAbsolute,
    Case::Revoked,
    Case::WrongClient,
    Case::WrongKey,
    Case::NarrowerScope,
    Case::WiderScope,
    Case::ForgedSecret,
];

fn token_of(tokens: &Value) -> latchkeyd::secret::RefreshTokenRef {
    latchkeyd::secret::parse_refresh_token(tokens["refresh_token"].as_str().unwrap()).unwrap()
}

async fn exec(server: &TestServer, sql: &str, session: &str) {
    let done = sqlx::query(sql)
        .bind(session)
        .bind(server.clock.now_ms())
        .execute(server.db.write())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

/// Revokes a session through the store, as every revocation does.
async fn revoke(server: &TestServer, session: &str) {
    let now = server.clock.now_ms();
    let revoked = revocation::revoke_session(
        &server.db,
        session,
        Actor::System,
        "test",
        &Origin::default(),
        now,
    )
    .await
    .unwrap();
    assert!(revoked);
}

/// Signs a family in, puts it in the case's state, and makes the refresh to present.
async fn prepare(server: &TestServer, case: Case) -> (String, RefreshRequest) {
    let tokens = sign_in(server, "ruth@example.com").await;
    let session = session_of(&tokens);
    let mut presented = token_of(&tokens);
    let mut latest = tokens.clone();
    let rotations = match case {
        Case::Rotated => 2,
        Case::ReplayedInGrace | Case::ReplayedAfterGrace => 1,
        _ => 0,
    };
    for _ in 0..rotations {
        let (status, body) = server
            .refresh(latest["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(status, 200, "{body}");
        latest = body;
    }
    match case {
        Case::ReplayedAfterGrace => {
            let head_issued_earlier = "UPDATE refresh_tokens SET issued_at = $2 - 120000 \
                 WHERE id = (SELECT head_token_id FROM sessions WHERE id = $1)";
            exec(server, head_issued_earlier, &session).await;
        }
        Case::ExpiredIdle => {
            let sql = "UPDATE refresh_tokens SET expires_at = $2 - 1 WHERE session_id = $1";
            exec(server, sql, &session).await;
        }
        Case::ExpiredAbsolute => {
            let sql = "UPDATE sessions SET expires_at = $2 - 1 WHERE id = $1";
            exec(server, sql, &session).await;
        }
        Case::Revoked => revoke(server, &session).await,
        Case::WrongKey => {
            let sql = "UPDATE sessions SET dpop_jkt = 'a-key-the-request-does-not-prove' \
                 WHERE id = $1 AND $2 > 0";
            exec(server, sql, &session).await;
        }
        Case::ForgedSecret => presented.secret_hash = vec![0; 32],
        _ => {}
    }
    let mut request = refresh_request(presented, None);
    if case == Case::WrongClient {
        request.client_id = "another-app".into();
    }
    request.requested_scope = match case {
        Case::NarrowerScope => Some("openid".into()),
        Case::WiderScope => Some("openid support".into()),
        _ => None,
    };
    request.origin.user_agent = Some("rotation-test".into());
    (session, request)
}

struct FamilyState {
    revoked: Option<String>,
    generation: i64,
    events: Vec<String>,
}

impl FamilyState {
    /// Refused as reuse, and the family revoked for it.
    fn assert_reuse_detected(&self, outcome: Outcome, context: &str) {
        assert_eq!(outcome.err(), Some(Refusal::ReuseDetected), "{context}");
        assert_eq!(self.revoked.as_deref(), Some("reuse_detected"), "{context}");
        assert!(
            self.events.iter().any(|e| e == "reuse_detected"),
            "{context}"
        );
    }
}

async fn family_state(server: &TestServer, session: &str) -> FamilyState {
    let row = sqlx::query("SELECT revoke_reason, generation FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(server.db.read())
        .await
        .unwrap();
    let events =
        sqlx::query("SELECT kind FROM security_events WHERE session_id = $1 ORDER BY at, id")
            .bind(session)
            .fetch_all(server.db.read())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("kind").unwrap())
            .collect();
    FamilyState {
        revoked: row.try_get("revoke_reason").unwrap(),
        generation: row.try_get("generation").unwrap(),
        events,
    }
}

/// What each case must come to, in the outcome and in the family as stored.
async fn check(server: &TestServer, case: Case, session: &str, outcome: Outcome) {
    let state = family_state(server, session).await;
    let has = |kind: &str| state.events.iter().any(|e| e == kind);
    let context = format!("{case:?}: {:?} {:?}", outcome.as_ref().err(), state.events);
    match case {
        Case::Fresh | Case::NarrowerScope => {
            let grant = outcome.expect(&context);
            let scope = if case == Case::Fresh {
                GRANTED
            } else {
                "openid"
            };
            assert_eq!(grant.scope, scope, "{context}");
            assert_eq!(grant.session_id, session);
            assert_eq!(state.generation, 2, "{context}");
            assert!(state.revoked.is_none(), "{context}");
            // The successor is the family's one live token.
            let next =
                latchkeyd::secret::parse_refresh_token(grant.refresh_token.expose()).unwrap();
            let head: Option<i64> = sqlx::query("SELECT head_token_id FROM sessions WHERE id = $1")
                .bind(session)
                .fetch_one(server.db.read())
                .await
                .unwrap()
                .try_get("head_token_id")
                .unwrap();
            assert_eq!(head, Some(next.id), "{context}");
        }
        Case::ReplayedInGrace => {
            let grant = outcome.expect(&context);
            assert_eq!(grant.scope, GRANTED);
            assert!(state.revoked.is_none(), "{context}");
            assert_eq!(state.generation, 3, "{context}");
            assert!(has("grace_replay"), "{context}");
        }
        Case::Rotated | Case::ReplayedAfterGrace => {
            state.assert_reuse_detected(outcome, &context);
        }
        Case::ExpiredIdle | Case::ExpiredAbsolute => {
            assert_eq!(outcome.err(), Some(Refusal::Expired), "{context}");
            assert!(state.revoked.is_none(), "{context}");
            assert_eq!(state.generation, 1, "{context}");
        }
        Case::Revoked => {
            assert_eq!(outcome.err(), Some(Refusal::Revoked), "{context}");
            assert!(has("revoked_token_used"), "{context}");
        }
        Case::WrongClient => {
            assert_eq!(outcome.err(), Some(Refusal::WrongClient), "{context}");
            assert!(state.revoked.is_none(), "{context}");
            assert_eq!(state.generation, 1, "{context}");
        }
        Case::WrongKey => {
            assert_eq!(outcome.err(), Some(Refusal::KeyMismatch), "{context}");
            assert_eq!(state.revoked.as_deref(), Some("key_mismatch"), "{context}");
            assert!(has("key_mismatch"), "{context}");
        }
        Case::WiderScope => {
            assert_eq!(outcome.err(), Some(Refusal::ScopeNotGranted), "{context}");
            assert_eq!(state.generation, 1, "{context}");
        }
        Case::ForgedSecret => {
            assert_eq!(outcome.err(), Some(Refusal::Unknown), "{context}");
            assert!(state.revoked.is_none(), "{context}");
            assert_eq!(state.generation, 1, "{context}");
        }
    }
}

async fn server_and_writer(backend: Backend) -> (TestServer, Rotator) {
    let server = TestServer::start(backend).await;
    server.add_user("ruth@example.com", Role::User).await;
    let settings = Settings::default();
    let mut tokens = settings.tokens.clone();
    tokens.reuse_grace_secs = GRACE_SECS;
    let rotator = Rotator::spawn(
        server.db.clone(),
        RotationPolicy {
            tokens,
            signals: settings.signals.clone(),
            revoke_on_key_mismatch: true,
        },
        server.clock.clone(),
    )
    .expect("writer");
    (server, rotator)
}

/// Every case alone: a batch of one.
async fn each_case_alone(backend: Backend) {
    let (server, rotator) = server_and_writer(backend).await;
    for case in CASES {
        let (session, request) = prepare(&server, case).await;
        let outcome = rotator.rotate(request).await.unwrap();
        check(&server, case, &session, outcome).await;
    }
}

/// Every case in one batch: while the writer waits on a lock held here, all the cases queue
/// behind it, and it takes them together once the lock is released.
async fn every_case_in_one_batch(backend: Backend) {
    let (server, rotator) = server_and_writer(backend).await;
    let mut prepared = Vec::new();
    for case in CASES {
        prepared.push((case, prepare(&server, case).await));
    }
    let (blocker_session, blocker) = prepare(&server, Case::Fresh).await;
    let mut hold = server.db.begin_write().await.unwrap();
    sqlx::query("UPDATE sessions SET head_token_id = head_token_id WHERE id = $1")
        .bind(&blocker_session)
        .execute(&mut *hold)
        .await
        .unwrap();
    let first = tokio::spawn({
        let rotator = rotator.clone();
        async move { rotator.rotate(blocker).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = Vec::new();
    for (case, (session, request)) in prepared {
        let rotator = rotator.clone();
        waiting.push((
            case,
            session,
            tokio::spawn(async move { rotator.rotate(request).await }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "the writer waits on the held lock");
    hold.commit().await.unwrap();
    assert!(first.await.unwrap().unwrap().is_ok());
    for (case, session, outcome) in waiting {
        check(&server, case, &session, outcome.await.unwrap().unwrap()).await;
    }
}

/// A refresh that reaches the writer while another transaction is revoking its session waits
/// for that transaction and is refused: no successor is written into a dead family. On
/// PostgreSQL the writer reads a batch that only rotates without locking its sessions, so here
/// it reads the session live and decides a rotation; moving the head is conditional on that,
/// finds the session revoked once the lock is free, and the batch is run again under the
/// locks. On SQLite the revoking transaction holds the database until it commits.
async fn a_revocation_in_flight_wins(backend: Backend) {
    let (server, rotator) = server_and_writer(backend).await;
    let (session, request) = prepare(&server, Case::Fresh).await;
    let before = family_state(&server, &session).await;
    let mut revoking = server.db.begin_write().await.unwrap();
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = 'user_revoked' WHERE id = $2",
    )
    .bind(server.clock.now_ms())
    .bind(&session)
    .execute(&mut *revoking)
    .await
    .unwrap();
    let refresh = tokio::spawn(async move { rotator.rotate(request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !refresh.is_finished(),
        "the refresh waits for the revocation"
    );
    revoking.commit().await.unwrap();
    let outcome = refresh.await.unwrap().unwrap();
    assert_eq!(outcome.err(), Some(Refusal::Revoked));
    let after = family_state(&server, &session).await;
    assert_eq!(
        after.generation, before.generation,
        "no successor was written"
    );
    assert!(
        after.events.iter().any(|e| e == "revoked_token_used"),
        "{:?}",
        after.events
    );
}

/// What happens to a family after the writer rotated it, before its successor comes back to
/// the writer. "Elsewhere" is the server's own writer: another replica, to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing: the successor is presented, and rotated.
    Nothing,
    /// The successor rotated elsewhere, its response lost: a replay within the grace window.
    RotatedElsewhere,
    /// The successor rotated twice elsewhere: reuse.
    RotatedTwiceElsewhere,
    /// As above, then the successor's idle lifetime passes: presented, it is reuse all the
    /// same, not an expired token.
    RotatedTwiceElsewhereExpired,
    RevokedElsewhere,
    /// The rotation bound the family to a key; the successor comes without it.
    BoundThenNoKey,
    /// The rotation bound the family to a key; the successor comes with it.
    BoundThenKey,
    /// The token rotated is presented again: a replay within the grace window.
    ParentReplayed,
}

const THENS: [Then; 8] = [
    Then::Nothing,
    Then::RotatedElsewhere,
    Then::RotatedTwiceElsewhere,
    Then::RevokedElsewhere,
    Then::BoundThenNoKey,
    Then::BoundThenKey,
    Then::ParentReplayed,
    // Last: the clock it moves on stays moved.
    Then::RotatedTwiceElsewhereExpired,
];

/// A refresh as the desktop app sends it, but for the key it proves.
fn refresh_request(token: latchkeyd::secret::RefreshTokenRef, jkt: Option<&str>) -> RefreshRequest {
    RefreshRequest {
        token,
        client_id: "latchkey-desktop".into(),
        requested_scope: None,
        jkt: jkt.map(str::to_string),
        bind: true,
        origin: Origin {
            ip: Some("127.0.0.1".into()),
            // The test client's software, so that no refresh raises a signal.
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) LatchkeyTest/2.0".into()),
        },
    }
}

/// A successor the writer issued, presented to it again after each of [`THENS`]: what the
/// writer knows of the family from its own rotation must never outweigh the database.
async fn after_a_rotation_here(backend: Backend) {
    const KEY: &str = "thumbprint-of-ruths-laptop-key";
    let (server, rotator) = server_and_writer(backend).await;
    for then in THENS {
        let tokens = sign_in(&server, "ruth@example.com").await;
        let session = session_of(&tokens);
        let bound = matches!(then, Then::BoundThenNoKey | Then::BoundThenKey);
        let first = refresh_request(token_of(&tokens), bound.then_some(KEY));
        let grant = rotator
            .rotate(first)
            .await
            .unwrap()
            .expect("the first rotation");
        let successor = grant.refresh_token.expose().to_string();
        let mut presented = latchkeyd::secret::parse_refresh_token(&successor).unwrap();
        let elsewhere = |token: String| {
            let server = &server;
            async move {
                let (status, body) = server.refresh(&token).await;
                assert_eq!(status, 200, "{then:?}: {body}");
                body["refresh_token"].as_str().unwrap().to_string()
            }
        };
        match then {
            Then::RotatedElsewhere => {
                elsewhere(successor.clone()).await;
            }
            Then::RotatedTwiceElsewhere | Then::RotatedTwiceElsewhereExpired => {
                let next = elsewhere(successor.clone()).await;
                elsewhere(next).await;
                if then == Then::RotatedTwiceElsewhereExpired {
                    let idle = Settings::default().tokens.family_idle_secs;
                    server.clock.advance(Duration::from_secs(idle + 60));
                }
            }
            Then::RevokedElsewhere => revoke(&server, &session).await,
            Then::ParentReplayed => presented = token_of(&tokens),
            Then::Nothing | Then::BoundThenNoKey | Then::BoundThenKey => {}
        }
        let jkt = (then == Then::BoundThenKey).then_some(KEY);
        let outcome = rotator
            .rotate(refresh_request(presented, jkt))
            .await
            .unwrap();
        let state = family_state(&server, &session).await;
        let has = |kind: &str| state.events.iter().any(|e| e == kind);
        let context = format!("{then:?}: {:?} {:?}", outcome.as_ref().err(), state.events);
        match then {
            Then::Nothing | Then::BoundThenKey => {
                let grant = outcome.expect(&context);
                assert_eq!(state.generation, 3, "{context}");
                assert!(state.revoked.is_none(), "{context}");
                let row = sqlx::query("SELECT head_token_id, dpop_jkt FROM sessions WHERE id = $1")
                    .bind(&session)
                    .fetch_one(server.db.read())
                    .await
                    .unwrap();
                let next =
                    latchkeyd::secret::parse_refresh_token(grant.refresh_token.expose()).unwrap();
                let head: Option<i64> = row.try_get("head_token_id").unwrap();
                assert_eq!(head, Some(next.id), "{context}");
                let jkt: Option<String> = row.try_get("dpop_jkt").unwrap();
                assert_eq!(jkt.as_deref(), bound.then_some(KEY), "{context}");
            }
            Then::RotatedElsewhere | Then::ParentReplayed => {
                outcome.expect(&context);
                assert!(has("grace_replay"), "{context}");
                assert!(state.revoked.is_none(), "{context}");
                let generation = if then == Then::RotatedElsewhere { 4 } else { 3 };
                assert_eq!(state.generation, generation, "{context}");
            }
            Then::RotatedTwiceElsewhere | Then::RotatedTwiceElsewhereExpired => {
                state.assert_reuse_detected(outcome, &context);
            }
            Then::RevokedElsewhere => {
                assert_eq!(outcome.err(), Some(Refusal::Revoked), "{context}");
                assert!(has("revoked_token_used"), "{context}");
                assert_eq!(state.generation, 2, "{context}");
            }
            Then::BoundThenNoKey => {
                assert_eq!(outcome.err(), Some(Refusal::KeyMismatch), "{context}");
                assert_eq!(state.revoked.as_deref(), Some("key_mismatch"), "{context}");
                assert_eq!(state.generation, 2, "{context}");
            }
        }
    }
}

both_backends!(
    each_case_alone,
    every_case_in_one_batch,
    a_revocation_in_flight_wins,
    after_a_rotation_here
);
