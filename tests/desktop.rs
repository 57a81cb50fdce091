//! The desktop app's commands through Tauri's mock runtime, against a real latchkeyd and the
//! real keychain of the test session: what the window can ask for, and what it gets back.

use std::time::Duration;

use latchkey_client::login::Device;
use latchkey_client::{Latchkey, LoginOptions};
use latchkey_desktop::Desktop;
use latchkey_testkit::{hold_lock, keychain_under_test, paths_under, FormBrowser, Latchkeyd};
use latchkeyd::store::users::Role;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

fn invoke(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    invoke_from(webview, "tauri://localhost", cmd, args)
}

/// A command call as if from a page at `origin`.
fn invoke_from(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    origin: &str,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: origin.parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

/// The app around `client` in Tauri's mock runtime, and its main window.
fn window(
    client: Latchkey,
) -> (
    tauri::App<tauri::test::MockRuntime>,
    tauri::WebviewWindow<tauri::test::MockRuntime>,
) {
    let app = latchkey_desktop::builder(mock_builder())
        .manage(Desktop::with(Ok(client)))
        .build(tauri::generate_context!(test = true))
        .unwrap();
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, webview)
}

/// A runtime of its own per test: the mock app is built outside of it, entered.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Signs `email` in through the scripted browser, as the app's client; returns the account id.
async fn sign_in(client: &Latchkey, issuer: &str, email: &'static str) -> String {
    let profile = client
        .login(
            LoginOptions {
                issuer,
                client_id: "latchkey-desktop",
                scope: latchkey_desktop::SCOPE,
                device: Device {
                    name: "helpdesk".into(),
                    platform: "linux".into(),
                    app: "Latchkey Desktop".into(),
                    app_version: "t".into(),
                },
                browser: &FormBrowser(email),
                timeout: Duration::from_secs(20),
            },
            std::future::pending(),
        )
        .await
        .unwrap();
    profile.id
}

#[test]
fn the_window_gets_views_never_tokens_and_bad_input_is_refused() {
    let rt = runtime();
    let home = tempfile::tempdir().unwrap();
    let (server, client) = rt.block_on(async {
        let server =
            Latchkeyd::start(Default::default(), &[("staff@example.com", Role::Support)]).await;
        let client = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
        sign_in(&client, &server.issuer, "staff@example.com").await;
        (server, client)
    });
    let issuer = server.issuer.clone();
    let _guard = rt.enter();
    let (_app, webview) = window(client);

    // The capability grants the app's commands to its own pages only.
    let foreign = invoke_from(&webview, "https://evil.example", "accounts", json!({})).unwrap_err();
    assert!(foreign.to_string().contains("not allowed"), "{foreign}");

    let accounts = invoke(&webview, "accounts", json!({})).unwrap();
    assert_eq!(accounts["accounts"][0]["label"], "staff@example.com");
    assert_eq!(accounts["accounts"][0]["state"], "signed_in");
    assert_eq!(accounts["accounts"][0]["issuer"], issuer);

    let sessions = invoke(&webview, "sessions", json!({ "filter": "active" })).unwrap();
    assert_eq!(sessions["devices"][0]["current"], true);
    let sid = sessions["devices"][0]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let info = invoke(&webview, "token_info", json!({})).unwrap();
    assert_eq!(info["claims"]["sid"], sid.as_str());
    assert_eq!(info["header"]["alg"], "EdDSA");
    // No command answer ever carries a token.
    for answer in [&accounts, &sessions, &info] {
        let text = answer.to_string();
        assert!(
            !text.contains("lkrt_") && !text.contains("eyJ"),
            "a token reached the window: {text}"
        );
    }

    let me = invoke(&webview, "me", json!({})).unwrap();
    assert_eq!(me["role"], "support");

    // Input is validated before anything reaches the server.
    let bad = invoke(
        &webview,
        "revoke_session",
        json!({ "session": "../../admin" }),
    )
    .unwrap_err();
    assert_eq!(bad["code"], "invalid_input");
    let bad = invoke(
        &webview,
        "admin_revoke_session",
        json!({ "session": sid, "reason": "  " }),
    )
    .unwrap_err();
    assert_eq!(bad["code"], "invalid_input");
    let bad = invoke(&webview, "sessions", json!({ "filter": "everything" })).unwrap_err();
    assert_eq!(bad["code"], "invalid_input");
    let bad = invoke(
        &webview,
        "add_account",
        json!({ "issuer": "ftp://example.com" }),
    )
    .unwrap_err();
    assert_eq!(bad["code"], "invalid_input");
    let missing = invoke(&webview, "family", json!({ "session": "no-such-session" })).unwrap_err();
    assert_eq!(missing["code"], "refused");

    let family = invoke(&webview, "family", json!({ "session": sid })).unwrap();
    assert_eq!(family["generations"][0]["generation"], 1);
    let audit = invoke(&webview, "admin_audit", json!({})).unwrap();
    assert!(audit["records"].as_array().unwrap().len() >= 2);
}

/// Switching accounts restarts the event watcher. The old one may be refreshing its account's
/// tokens: the server has rotated the refresh token once it answers, and a watcher stopped
/// before it stores the successor would leave the family to die as reuse at its next refresh.
/// Here the old watcher's refresh waits on its account's lock (held by the test, as a refresh
/// in another process would) when the switch comes; it must still refresh once the lock is free.
#[test]
fn switching_accounts_lets_a_refresh_in_flight_finish() {
    let rt = runtime();
    let home = tempfile::tempdir().unwrap();
    // Access tokens this short are refreshed whenever the watcher connects.
    let tokens = latchkeyd::config::TokenPolicy {
        access_token_ttl_secs: 30,
        ..Default::default()
    };
    let users = [("a@example.com", Role::User), ("b@example.com", Role::User)];
    let (_server, client, a, b) = rt.block_on(async {
        let server = Latchkeyd::start(tokens, &users).await;
        let client = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
        let a = sign_in(&client, &server.issuer, "a@example.com").await;
        let b = sign_in(&client, &server.issuer, "b@example.com").await;
        client.switch(&a).unwrap();
        (server, client, a, b)
    });
    // Another client on the same files: its status reads them (and the keychain) afresh.
    let observer = Latchkey::open(paths_under(home.path()), keychain_under_test()).unwrap();
    let expiry = |account: &str| {
        let status = observer.status().unwrap();
        match &status.iter().find(|s| s.id == account).unwrap().token {
            latchkey_client::TokenState::SignedIn {
                access_expires_at, ..
            } => access_expires_at.unwrap(),
            other => panic!("{account} is not signed in: {other:?}"),
        }
    };
    let before = expiry(&a);

    let held = hold_lock(&paths_under(home.path()).lock_file(&a));

    let _guard = rt.enter();
    let (_app, webview) = window(client);
    // The app's watcher follows `a` (as it does from start-up, which the mock runtime skips)
    // and waits for the lock to refresh; then the switch to `b`.
    invoke(&webview, "switch_account", json!({ "account": a })).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    invoke(&webview, "switch_account", json!({ "account": b })).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        expiry(&a),
        before,
        "nothing refreshed `a` while its lock was held"
    );
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while expiry(&a) == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        expiry(&a) > before,
        "the refresh of `a` in flight at the switch was dropped"
    );
}
