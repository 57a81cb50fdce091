//! latchkeyd as separate processes on one database: killed with SIGKILL under refresh load and
//! restarted, and run as three replicas on one PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkeyd::secret::parse_refresh_token;
use latchkeyd::store::users::Role;
use serde_json::{json, Value};
use sqlx::Row;

use crate::both_backends;
use crate::common::*;
use crate::ssf::{create_stream, receiver, set_claims, SESSION_REVOKED};

/// A `latchkeyd serve` process on the test server's database, master key and issuer.
struct Process {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Process {
    async fn start(server: &TestServer) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = server.dir.path().join(format!("process-{port}"));
        let child = Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .args(["--database", &server.database, "--master-key-file"])
            .arg(server.dir.path().join("master.key"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--issuer", &server.base])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            let up = process
                .http
                .get(format!("{}/healthz", process.url))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("latchkeyd did not start at {}", process.url);
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Result<(u16, Value)> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .form(form)
            .send()
            .await?;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn refresh(&self, token: &str) -> reqwest::Result<(u16, Value)> {
        self.post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "latchkey-desktop"),
                ("refresh_token", token),
            ],
        )
        .await
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut off.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Head {
    id: Option<i64>,
    parent: Option<i64>,
    generation: i64,
    revoke_reason: Option<String>,
    tokens: i64,
}

async fn head_of(server: &TestServer, session: &str) -> Head {
    let row = sqlx::query(
        "SELECT s.head_token_id, h.parent_id, s.generation, s.revoke_reason, \
         (SELECT COUNT(*) FROM refresh_tokens t WHERE t.session_id = s.id) AS tokens \
         FROM sessions s LEFT JOIN refresh_tokens h ON h.id = s.head_token_id WHERE s.id = $1",
    )
    .bind(session)
    .fetch_one(server.db.read())
    .await
    .unwrap();
    Head {
        id: row.try_get("head_token_id").unwrap(),
        parent: row.try_get("parent_id").unwrap(),
        generation: row.try_get("generation").unwrap(),
        revoke_reason: row.try_get("revoke_reason").unwrap(),
        tokens: row.try_get("tokens").unwrap(),
    }
}

const FAMILIES: usize = 8;
const ROUNDS: u64 = 3;

/// Each round: families rotate as fast as they can against a latchkeyd process, which is
/// killed mid-load and started again. Then every family is checked against what its client
/// was answered: no answered rotation is lost, each family has one chain and one head, and
/// the last token the client holds either still works (its in-flight refresh never
/// committed) or is refused as reuse (it committed, and the answer was lost with the process).
async fn a_killed_server_loses_no_answered_rotation(backend: Backend) {
    // Many sign-ins from one address; the sign-in limit is not what this test is about.
    let server = TestServer::with(backend, |s| s.limits.authorize.per_minute = 0).await;
    server.add_user("kim@example.com", Role::User).await;
    let (mut still_live, mut committed_in_flight) = (0, 0);
    for round in 0..ROUNDS {
        let mut families = Vec::new();
        for _ in 0..FAMILIES {
            let tokens = sign_in(&server, "kim@example.com").await;
            let held = Arc::new(Mutex::new(
                tokens["refresh_token"].as_str().unwrap().to_string(),
            ));
            families.push((session_of(&tokens), held));
        }
        let mut process = Process::start(&server).await;
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut load = Vec::new();
        for (_, held) in &families {
            let (held, url, answered) = (held.clone(), process.url.clone(), answered.clone());
            load.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let token = held.lock().unwrap().clone();
                    let res = http
                        .post(format!("{url}/token"))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("client_id", "latchkey-desktop"),
                            ("refresh_token", token.as_str()),
                        ])
                        .send()
                        .await;
                    let Ok(res) = res else { return };
                    let status = res.status().as_u16();
                    let Ok(body) = res.json::<Value>().await else {
                        return;
                    };
                    assert_eq!(status, 200, "a refresh under load: {body}");
                    *held.lock().unwrap() = body["refresh_token"].as_str().unwrap().to_string();
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        process.kill();
        for task in load {
            task.await.unwrap();
        }
        assert!(
            answered.load(std::sync::atomic::Ordering::Relaxed) > FAMILIES as u64,
            "the families rotated before the kill"
        );

        let process = Process::start(&server).await;
        for (session, held) in &families {
            let held = held.lock().unwrap().clone();
            let id = parse_refresh_token(&held).unwrap().id;
            let head = head_of(&server, session).await;
            assert_eq!(
                head.revoke_reason, None,
                "no family was revoked by the kill"
            );
            assert_eq!(
                head.tokens, head.generation,
                "one token per generation: one chain, no stray token"
            );
            let chain = latchkeyd::store::chains::chain(&server.db, session)
                .await
                .unwrap();
            assert_eq!(chain.len() as i64, head.generation, "the chain is whole");
            let (status, body) = process.refresh(&held).await.unwrap();
            if head.id == Some(id) {
                assert_eq!(status, 200, "the held token is the head: {body}");
                still_live += 1;
            } else {
                assert_eq!(
                    head.parent,
                    Some(id),
                    "the head is the held token or its successor: nothing answered is lost"
                );
                assert_eq!(status, 400, "{body}");
                assert_eq!(body["error"], "invalid_grant");
                assert_eq!(
                    head_of(&server, session).await.revoke_reason.as_deref(),
                    Some("reuse_detected")
                );
                committed_in_flight += 1;
            }
        }
    }
    eprintln!(
        "{backend:?}: {still_live} held tokens still live, {committed_in_flight} refreshes committed \
         but never answered"
    );
    assert_eq!(
        still_live + committed_in_flight,
        FAMILIES * ROUNDS as usize,
        "every family checked"
    );
}

/// Three latchkeyd processes on one PostgreSQL, as a scaled-out deployment runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_agree() {
    if !postgres_configured() {
        return;
    }
    let server = TestServer::start(Backend::Postgres).await;
    server.add_user("lou@example.com", Role::User).await;
    let replicas = [
        Process::start(&server).await,
        Process::start(&server).await,
        Process::start(&server).await,
    ];

    // One token presented 30 times at once, spread over the replicas: one success, and the
    // family is dead.
    let tokens = sign_in(&server, "lou@example.com").await;
    let token = tokens["refresh_token"].as_str().unwrap();
    let attempts = (0..30).map(|i| replicas[i % 3].refresh(token));
    let results = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.as_ref().unwrap().0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    let session = session_of(&tokens);
    assert_eq!(
        head_of(&server, &session).await.revoke_reason.as_deref(),
        Some("reuse_detected")
    );

    // A chain rotated round-robin over the replicas stays valid.
    let tokens = sign_in(&server, "lou@example.com").await;
    let session = session_of(&tokens);
    let mut token = tokens["refresh_token"].as_str().unwrap().to_string();
    for i in 0..30 {
        let (status, body) = replicas[i % 3].refresh(&token).await.unwrap();
        assert_eq!(status, 200, "rotation {i} at replica {}: {body}", i % 3);
        token = body["refresh_token"].as_str().unwrap().to_string();
    }
    let head = head_of(&server, &session).await;
    assert_eq!((head.generation, head.tokens), (31, 31));
    assert_eq!(head.id, Some(parse_refresh_token(&token).unwrap().id));

    // A session revoked at one replica is refused at the others at once.
    let tokens = sign_in(&server, "lou@example.com").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo = |p: &Process| {
        p.http
            .get(format!("{}/userinfo", p.url))
            .bearer_auth(access)
            .send()
    };
    for p in &replicas {
        assert_eq!(userinfo(p).await.unwrap().status(), 200);
    }
    let (status, _) = replicas[0]
        .post(
            "/revoke",
            &[("client_id", "latchkey-desktop"), ("token", refresh)],
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    for p in &replicas[1..] {
        assert_eq!(userinfo(p).await.unwrap().status(), 401, "at {}", p.url);
        let (status, body) = p.refresh(refresh).await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
}

/// The outbox is the database's: an event committed by a process killed right after the
/// revocation is delivered by the process started next.
async fn a_killed_server_keeps_its_outbox(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("erin@example.com", Role::User).await;
    let token = receiver(&server, "receiver").await;
    let stream = create_stream(&server, &token).await;
    let tokens = sign_in(&server, "erin@example.com").await;

    let mut first = Process::start(&server).await;
    let (status, body) = first
        .post(
            "/revoke",
            &[
                ("token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", "latchkey-desktop"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    first.kill();

    let second = Process::start(&server).await;
    let endpoint = stream["delivery"]["endpoint_url"].as_str().unwrap();
    let path = endpoint.strip_prefix(&server.base).unwrap();
    let answer: Value = second
        .http
        .post(format!("{}{path}", second.url))
        .bearer_auth(&token)
        .json(&json!({ "returnImmediately": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sets = answer["sets"].as_object().expect("sets");
    assert_eq!(sets.len(), 1, "{answer}");
    let claims = set_claims(&server, sets.values().next().unwrap(), "receiver").await;
    assert_eq!(
        claims["sub_id"]["session"]["id"],
        session_of(&tokens),
        "{claims}"
    );
    assert!(claims["events"][SESSION_REVOKED].is_object(), "{claims}");
}

both_backends!(
    a_killed_server_loses_no_answered_rotation,
    a_killed_server_keeps_its_outbox,
);
