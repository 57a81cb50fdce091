//! The client core against a real latchkeyd on 127.0.0.1:0 (and the certified peer), with the
//! real keychain: the Secret Service of the gnome-keyring-daemon that `scripts/test` starts in
//! a private D-Bus session, and the kernel keyring of the `keyctl session` it runs in. Only the
//! system browser is replaced: by a scripted one that fills in the sign-in form over HTTP.

use std::sync::Arc;
use std::time::Duration;

use latchkey_client::browser::Browser;
use latchkey_client::clock::{Clock, SystemClock};
use latchkey_client::keychain::{self, Backend, Choice};
use latchkey_client::login::Device;
use latchkey_client::loopback::Listener;
use latchkey_client::proto::{EventKind, SessionQuery, SessionState};
use latchkey_client::{CodeLoginOptions, Error, Latchkey, LoginOptions, TokenState};
use latchkey_testkit::{
    files, hold_lock, keychain_under_test, paths_under, FormBrowser, Latchkeyd,
};
use latchkeyd::store::users::Role;

async fn latchkeyd(access_ttl: u64) -> Latchkeyd {
    let tokens = latchkeyd::config::TokenPolicy {
        access_token_ttl_secs: access_ttl,
        ..Default::default()
    };
    Latchkeyd::start(tokens, &[("alice@example.com", Role::User)]).await
}

async fn login(
    client: &Latchkey,
    issuer: &str,
    device: &str,
) -> latchkey_client::profiles::Profile {
    client
        .login(
            LoginOptions {
                issuer,
                client_id: "latchkey-desktop",
                scope: "openid profile email offline_access account",
                device: Device {
                    name: device.into(),
                    platform: "linux".into(),
                    app: "Latchkey Test".into(),
                    app_version: "test".into(),
                },
                browser: &FormBrowser("alice@example.com"),
                timeout: Duration::from_secs(20),
            },
            std::future::pending(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refresh_and_log_out_against_latchkeyd() {
    // A 30 s access token is inside the client's 60 s refresh-ahead window: every use refreshes.
    let server = latchkeyd(30).await;
    let home = tempfile::tempdir().unwrap();
    let client = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
    let profile = login(&client, &server.issuer, "laptop").await;
    assert_eq!(profile.label, "alice@example.com");
    assert_eq!(profile.issuer, server.issuer);
    assert!(profile.scope.contains("account"));

    let status = client.status().unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].current);
    // latchkeyd takes DPoP: the session is bound to a device key kept in the keychain entry.
    let TokenState::SignedIn {
        access_expires_at: Some(_),
        device_key: Some(jkt),
    } = &status[0].token
    else {
        panic!("signed in and bound: {:?}", status[0].token);
    };
    let jkt = jkt.clone();

    // Refresh ahead of expiry: a new access token each time, the rotated refresh token stored.
    let (_, first, _) = client.access_token(None).await.unwrap();
    let (_, second, _) = client.access_token(None).await.unwrap();
    assert_ne!(first.expose(), second.expose());
    let sessions = client
        .sessions(None, &SessionQuery::default())
        .await
        .unwrap();
    let session = &sessions.devices[0].sessions[0];
    assert!(session.current);
    assert_eq!(session.device.name.as_deref(), Some("laptop"));
    assert_eq!(session.key_thumbprint.as_deref(), Some(jkt.as_str()));
    assert!(session.generation >= 3, "{session:?}");
    let sid = session.id.to_string();

    // Nothing secret on disk: not in the config dir, not in the data dir.
    for file in files(home.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_string();
        assert!(
            !text.contains("lkrt_"),
            "a refresh token in {}",
            file.display()
        );
        assert!(
            !text.contains(first.expose().as_str()),
            "an access token in {}",
            file.display()
        );
        assert!(!text.contains("eyJ"), "a JWT in {}", file.display());
    }

    // Logout revokes at the server and deletes the keychain entry.
    assert!(client.logout(None).await.unwrap());
    let revoked: Option<i64> = sqlx_revoked_at(&server, &sid).await;
    assert!(revoked.is_some(), "the server revoked the session");
    assert!(matches!(
        client.status().unwrap()[0].token,
        TokenState::SignedOut { .. }
    ));
    let err = client.access_token(None).await.unwrap_err();
    assert!(matches!(err, Error::SignedOut(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    let store = keychain::open(keychain_under_test(), home.path().join("unused")).unwrap();
    let entry = paths_under(home.path()).keychain_account(&profile.id);
    assert!(
        store.get(&entry).unwrap().is_none(),
        "the keychain entry is gone"
    );

    // Forget removes the account.
    client.forget(&profile.label).unwrap();
    assert!(client.status().unwrap().is_empty());
}

async fn sqlx_revoked_at(server: &Latchkeyd, sid: &str) -> Option<i64> {
    latchkeyd::store::sessions::liveness(&server.db, sid)
        .await
        .unwrap()
        .filter(|l| l.revoked)
        .map(|_| 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refreshing_at_once_never_trip_reuse_detection() {
    let server = latchkeyd(30).await;
    let home = tempfile::tempdir().unwrap();
    let a = Arc::new(Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap());
    login(&a, &server.issuer, "laptop").await;
    // A second client on the same files and keychain: another process, as far as locks go.
    let b = Arc::new(Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            c.refresh_now(None).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every refresh succeeds");
    }
    let sessions = a.sessions(None, &SessionQuery::default()).await.unwrap();
    let session = &sessions.devices[0].sessions[0];
    assert_eq!(
        session.state,
        SessionState::Active,
        "no reuse was detected: {session:?}"
    );
    assert!(session
        .signals
        .iter()
        .all(|s| s.kind != EventKind::ReuseDetected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_waits_for_a_refresh_in_flight() {
    // Access tokens that stay fresh: reading the sessions needs no refresh, so no lock.
    let server = latchkeyd(600).await;
    let home = tempfile::tempdir().unwrap();
    let client = Arc::new(Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap());
    let first = login(&client, &server.issuer, "laptop").await;
    // A refresh of the account in progress elsewhere holds its lock until it has stored the
    // rotated token; a sign-in stored before that would be overwritten by it.
    let held = hold_lock(&paths_under(home.path()).lock_file(&first.id));
    let again = tokio::spawn({
        let (client, issuer) = (client.clone(), server.issuer.clone());
        async move { login(&client, &issuer, "laptop").await }
    });
    // The server has issued the new sign-in's tokens...
    let signed_in = |n: usize| {
        let client = client.clone();
        async move {
            let list = client
                .sessions(None, &SessionQuery::default())
                .await
                .unwrap();
            list.devices.iter().map(|d| d.sessions.len()).sum::<usize>() == n
        }
    };
    for _ in 0..100 {
        if signed_in(2).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(signed_in(2).await, "the second sign-in reached the server");
    // ...and the client stores them only once the refresh is done.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !again.is_finished(),
        "the sign-in was stored under a refresh in flight"
    );
    drop(held);
    let second = tokio::time::timeout(Duration::from_secs(20), again)
        .await
        .expect("the sign-in ends once the lock is free")
        .unwrap();
    assert_eq!(second.id, first.id, "the same account, signed in again");
    let list = client
        .sessions(None, &SessionQuery::default())
        .await
        .unwrap();
    let current: Vec<_> = list
        .devices
        .iter()
        .flat_map(|d| &d.sessions)
        .filter(|s| s.current)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].state, SessionState::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_elsewhere_signs_the_account_out_with_the_reason() {
    let server = latchkeyd(30).await;
    let laptop_home = tempfile::tempdir().unwrap();
    let phone_home = tempfile::tempdir().unwrap();
    let laptop = Latchkey::open(paths_under(laptop_home.path()), keychain_under_test()).unwrap();
    let phone = Latchkey::open(paths_under(phone_home.path()), keychain_under_test()).unwrap();
    login(&laptop, &server.issuer, "laptop").await;
    login(&phone, &server.issuer, "phone").await;
    let done = laptop.revoke_others(None).await.unwrap();
    assert_eq!(done.revoked.len(), 1);

    let err = phone.refresh_now(None).await.unwrap_err();
    match &err {
        Error::SignedOut(message) => {
            assert!(
                message.contains("revoked or its token was reused elsewhere"),
                "{message}"
            )
        }
        other => panic!("{other}"),
    }
    match &phone.status().unwrap()[0].token {
        TokenState::SignedOut { reason, .. } => assert!(reason.contains("revoked")),
        other => panic!("{other:?}"),
    }
    // Not retried: the next call fails at once, without asking the server.
    assert!(matches!(
        phone.access_token(None).await,
        Err(Error::SignedOut(_))
    ));
    assert!(
        laptop.access_token(None).await.is_ok(),
        "the laptop is untouched"
    );
}

/// The scenario DPoP exists for: the refresh token is copied out of the keychain onto another
/// machine. Without the device key it buys nothing but a `key_mismatch` and a dead family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_copied_to_another_machine_gets_nothing_and_kills_its_family() {
    let server = latchkeyd(300).await;
    let home = tempfile::tempdir().unwrap();
    let laptop = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
    let profile = login(&laptop, &server.issuer, "laptop").await;

    // What an attacker with the keychain entry's refresh token does, from their machine.
    let store = keychain::open(keychain_under_test(), home.path().join("unused")).unwrap();
    let entry = store
        .get(&paths_under(home.path()).keychain_account(&profile.id))
        .unwrap()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_str(entry.expose()).unwrap();
    let copied = entry["refresh_token"].as_str().unwrap();
    let their_key = latchkey_client::dpop::DeviceKey::generate();
    let token_url = format!("{}/token", server.issuer);
    let res = reqwest::Client::new()
        .post(&token_url)
        .header(
            "DPoP",
            their_key.proof(SystemClock.now_secs(), "POST", &token_url, None, None),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "latchkey-desktop"),
            ("refresh_token", copied),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // The family is dead, and the owner learns it on the next refresh.
    let err = laptop.refresh_now(None).await.unwrap_err();
    assert!(matches!(err, Error::SignedOut(_)), "{err}");
    let events = latchkeyd::store::events::list(
        &server.db,
        &latchkeyd::store::events::Filter {
            kind: Some("key_mismatch".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 1, "one key_mismatch signal");
    assert_eq!(events[0].severity, latchkeyd::store::events::Severity::High);
    assert_eq!(events[0].details["presented_jkt"], their_key.thumbprint());
    assert_eq!(events[0].details["session_revoked"], true);
}

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_listener_holds_against_stray_requests() {
    let listener = Listener::bind().await.unwrap();
    let uri = listener.redirect_uri.clone();
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"),
        "{uri}"
    );
    let other = Listener::bind().await.unwrap();
    assert_ne!(other.redirect_uri, uri, "each sign-in gets its own port");
    let waiting = tokio::spawn(listener.wait(
        "the-state",
        "Latchkey Test",
        Duration::from_secs(20),
        std::future::pending(),
    ));

    // A local process guessing: wrong state, no state, an error with the wrong state, another
    // path, another method. Each is answered and ignored.
    let (status, body) = get(&format!("{uri}?code=evil&state=guess")).await;
    assert_eq!(status, 400);
    assert!(body.contains("not the sign-in in progress"));
    assert_eq!(get(&format!("{uri}?code=evil")).await.0, 400);
    assert_eq!(
        get(&format!("{uri}?error=access_denied&state=guess"))
            .await
            .0,
        400
    );
    assert_eq!(get(&uri.replace("/callback", "/other")).await.0, 404);
    let post = reqwest::Client::new().post(&uri).send().await.unwrap();
    assert_eq!(post.status(), 404);
    assert!(!waiting.is_finished(), "still waiting for the real answer");

    let (status, body) = get(&format!("{uri}?code=the-code&state=the-state&iss=x")).await;
    assert_eq!(status, 200);
    // The sign-in page's look (its stylesheet and brand), the app to go back to, and that the
    // tab has done its job.
    assert!(
        body.contains("<h1 id=\"page-title\">You are signed in</h1>"),
        "{body}"
    );
    assert!(
        body.contains("Latchkey Test now has your sign-in."),
        "{body}"
    );
    assert!(body.contains("You can close this tab."), "{body}");
    assert!(body.contains("<span>Latchkey</span>") && body.contains("--accent:"));
    let redirect = waiting.await.unwrap().unwrap();
    assert_eq!(redirect.code.expose(), "the-code");
    assert_eq!(redirect.iss.as_deref(), Some("x"));
    // The listener is closed afterwards.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(reqwest::get(&format!("{uri}?code=again&state=the-state"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_listener_reports_errors_timeouts_and_cancellation() {
    let listener = Listener::bind().await.unwrap();
    let uri = listener.redirect_uri.clone();
    let waiting = tokio::spawn(listener.wait(
        "s",
        "Latchkey Test",
        Duration::from_secs(20),
        std::future::pending(),
    ));
    let (_, page) = get(&format!(
        "{uri}?error=access_denied&error_description=no+thanks&state=s"
    ))
    .await;
    assert!(page.contains("access_denied"));
    assert!(page.contains("class=\"alert\""), "{page}");
    assert!(
        page.contains("Go back to Latchkey Test to try again. You can close this tab."),
        "{page}"
    );
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("access_denied: no thanks"),
        "{err}"
    );

    let listener = Listener::bind().await.unwrap();
    let err = listener
        .wait(
            "s",
            "Latchkey Test",
            Duration::from_millis(300),
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(err.exit_code(), 6);

    let listener = Listener::bind().await.unwrap();
    let err = listener
        .wait(
            "s",
            "Latchkey Test",
            Duration::from_secs(20),
            tokio::time::sleep(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
}

#[test]
fn the_keychains_really_store_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let insecure = dir.path().join("INSECURE-tokens.json");
    for (choice, backend) in [
        (Choice::SecretService, Backend::SecretService),
        (Choice::Keyutils, Backend::Keyutils),
        (Choice::InsecureFile, Backend::InsecureFile),
    ] {
        let store = keychain::open(choice, insecure.clone())
            .unwrap_or_else(|e| panic!("{backend:?} is usable in the test session: {e}"));
        assert_eq!(store.backend(), backend);
        let name = format!("test-{}-{backend:?}", std::process::id());
        let secret = latchkey_client::Secret::new("lkrt_value".to_string());
        store.set(&name, &secret).unwrap();
        assert_eq!(store.get(&name).unwrap(), Some(secret));
        store.delete(&name).unwrap();
        assert_eq!(store.get(&name).unwrap(), None);
        let too_big = latchkey_client::Secret::new("x".repeat(keychain::MAX_SECRET_BYTES + 1));
        assert!(
            store.set(&name, &too_big).is_err(),
            "{backend:?} keeps the Windows limit"
        );
    }
    assert!(!Backend::Keyutils.persists());
    assert!(Backend::SecretService.persists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&insecure).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// The certified peer (node-oidc-provider) from `../shared/peers`, prepared by `scripts/test`.
struct Peer {
    issuer: String,
    child: std::process::Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn peer_dir() -> std::path::PathBuf {
    std::env::var("LATCHKEY_PEERS_DIR")
        .expect("LATCHKEY_PEERS_DIR is not set: run ./scripts/test, which prepares the peer")
        .into()
}

fn peer() -> Peer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("node")
        .arg(peer_dir().join("oidc-peer.mjs"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs the peer");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("ready"), "the peer starts: {line}");
    // The peer goes on writing (notices on first use of a feature): a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Peer {
        issuer: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// The peer's own sign-in pages, driven by the peer kit's browser bot.
struct PeerBrowser;

impl Browser for PeerBrowser {
    fn open(&self, url: &str) -> std::io::Result<()> {
        let script = format!(
            "import('{}').then(async (m) => {{ const u = process.argv[1]; \
             const cb = await m.signIn(u, {{ user: 'alice', password: 'pw', \
             redirectPrefix: new URL(u).searchParams.get('redirect_uri') }}); \
             await fetch(cb); }})",
            peer_dir().join("browser-bot.mjs").display()
        );
        let url = url.to_string();
        tokio::spawn(async move {
            let status = tokio::process::Command::new("node")
                .args(["-e", &script, &url])
                .status()
                .await
                .unwrap();
            assert!(status.success(), "the peer's sign-in pages were walked");
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_signs_in_refreshes_and_logs_out_at_the_certified_peer() {
    let peer = peer();
    let home = tempfile::tempdir().unwrap();
    let client = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
    let profile = client
        .login(
            LoginOptions {
                issuer: &peer.issuer,
                client_id: "peer-desktop",
                scope: "openid profile email offline_access account",
                device: Device::this_machine("Latchkey Test", "test"),
                browser: &PeerBrowser,
                timeout: Duration::from_secs(30),
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(profile.issuer, peer.issuer);
    assert_eq!(profile.subject, "alice");
    // The peer takes DPoP as well: the same device key binds the session there.
    assert!(
        matches!(
            client.status().unwrap()[0].token,
            TokenState::SignedIn {
                device_key: Some(_),
                ..
            }
        ),
        "bound at the peer"
    );
    let (_, first, _) = client.access_token(None).await.unwrap();
    let (_, second, _) = client.refresh_now(None).await.unwrap();
    assert_ne!(first.expose(), second.expose(), "a new access token");
    let (_, third, _) = client.refresh_now(None).await.unwrap();
    assert_ne!(second.expose(), third.expose());
    let err = client
        .sessions(None, &SessionQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(
        client.logout(None).await.unwrap(),
        "the peer confirmed the revocation"
    );
    assert!(matches!(
        client.access_token(None).await,
        Err(Error::SignedOut(_))
    ));
}

/// Sign-in with a code (RFC 8628) as a headless machine does it, approved by a person in a
/// browser elsewhere: at latchkeyd, then at the certified peer with the same client code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_signs_in_with_a_code_at_latchkeyd_and_at_the_peer() {
    let server = latchkeyd(300).await;
    let home = tempfile::tempdir().unwrap();
    let client = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
    let device = || Device {
        name: "build-server".into(),
        platform: "linux".into(),
        app: "latchkey CLI".into(),
        app_version: "test".into(),
    };
    let opts = |issuer| CodeLoginOptions {
        issuer,
        client_id: "latchkey-desktop",
        scope: "openid profile email offline_access account",
        device: device(),
        timeout: None,
    };
    let (shown_tx, shown_rx) = std::sync::mpsc::channel();
    let profile = client
        .login_with_code(
            opts(&server.issuer),
            |code| {
                shown_tx.send(code.clone()).unwrap();
                let url = code.verification_uri_complete.clone().unwrap();
                tokio::spawn(async move {
                    let page = latchkey_testkit::approve_code(&url, "alice@example.com").await;
                    assert!(page.contains("Your device is signed in"), "{page}");
                });
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    let shown = shown_rx.recv().unwrap();
    assert_eq!(shown.verification_uri, format!("{}/device", server.issuer));
    assert_eq!(shown.expires_in, Duration::from_secs(600));
    assert_eq!(profile.label, "alice@example.com");
    // A session like any other: named for the device, bound to this client's key.
    let list = client
        .sessions(None, &SessionQuery::default())
        .await
        .unwrap();
    let session = &list.devices[0].sessions[0];
    assert_eq!(session.device.name.as_deref(), Some("build-server"));
    assert!(session.current && session.key_thumbprint.is_some());
    client.logout(None).await.unwrap();

    // Denied in the browser: the sign-in says so and stores nothing.
    let denied = client
        .login_with_code(
            opts(&server.issuer),
            |code| {
                let url = code.verification_uri_complete.clone().unwrap();
                tokio::spawn(async move {
                    let page = latchkey_testkit::deny_code(&url).await;
                    assert!(page.contains("Sign-in denied"), "{page}");
                });
            },
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("denied"), "{denied}");
    assert_eq!(denied.exit_code(), 6);

    // Cancelled while waiting (Ctrl-C).
    let cancelled = client
        .login_with_code(
            opts(&server.issuer),
            |_| {},
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(cancelled.to_string().contains("cancelled"), "{cancelled}");

    // The certified peer: its own device pages, walked by the peer kit's browser bot up to
    // its "Sign-in Success" page.
    let peer = peer();
    // A walk that fails ends the wait at once, rather than when the code expires.
    let (failed, failure) = tokio::sync::oneshot::channel::<()>();
    let at_peer = client
        .login_with_code(
            CodeLoginOptions {
                issuer: &peer.issuer,
                client_id: "peer-desktop",
                scope: "openid offline_access",
                device: device(),
                timeout: None,
            },
            |code| {
                let url = code.verification_uri_complete.clone().unwrap();
                let script = format!(
                    "import('{}').then(async (m) => {{ try {{ await m.signIn(process.argv[1], \
                     {{ user: 'alice', password: 'pw', redirectPrefix: 'never:' }}); process.exit(1); }} \
                     catch (e) {{ if (/Sign-in Success/.test(e.message)) process.exit(0); \
                     console.error(e.message); process.exit(1); }} }})",
                    peer_dir().join("browser-bot.mjs").display()
                );
                tokio::spawn(async move {
                    let status = tokio::process::Command::new("node")
                        .args(["-e", &script, &url])
                        .status()
                        .await
                        .unwrap();
                    if !status.success() {
                        let _ = failed.send(());
                    }
                });
            },
            async {
                if failure.await.is_ok() {
                    panic!("the peer's device pages were not walked to the end");
                }
                std::future::pending::<()>().await
            },
        )
        .await
        .unwrap();
    assert_eq!(at_peer.subject, "alice");
    let (_, first, _) = client.access_token(None).await.unwrap();
    let (_, second, _) = client.refresh_now(None).await.unwrap();
    assert_ne!(first.expose(), second.expose(), "it refreshes at the peer");
}

/// An account that keyring 3's own keyutils store kept (in the session keyring, under its own
/// name) is moved to the persistent keyring on first read, not lost.
#[cfg(target_os = "linux")]
#[test]
fn an_entry_of_keyring_3s_keyutils_store_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("legacy-{}", std::process::id());
    let legacy = keyring::Entry::new_with_credential(Box::new(
        keyring::keyutils::KeyutilsCredential::new_with_target(None, keychain::SERVICE, &name)
            .unwrap(),
    ));
    legacy.set_password("lkrt_from_before").unwrap();
    let store = keychain::open(Choice::Keyutils, dir.path().join("unused")).unwrap();
    let before = latchkey_client::Secret::new("lkrt_from_before".to_string());
    assert_eq!(store.get(&name).unwrap(), Some(before.clone()));
    assert!(legacy.get_password().is_err(), "moved, not copied");
    assert_eq!(store.get(&name).unwrap(), Some(before));
    store.delete(&name).unwrap();
    assert_eq!(store.get(&name).unwrap(), None);
}
