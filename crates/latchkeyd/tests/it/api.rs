//! The account and support APIs, suspicion signals, the live event stream and the audit log,
//! against a real server on both backends.

use std::time::Duration;

use latchkey_proto::ActorKind;
use latchkeyd::store::audit::{self, Verdict};
use latchkeyd::store::users::Role;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::*;
use latchkeyd::store::clients::ClientKind;

/// What the desktop app asks for: `support` is granted only to support staff.
const ACCOUNT_SCOPE: &str = "openid email offline_access account support";

/// Signs in through the form with `client_id` from `device`; returns the token response.
async fn sign_in_as(
    server: &TestServer,
    email: &str,
    client_id: &str,
    device: &str,
    scope: &str,
) -> Value {
    let signin = SignIn::new()
        .set("client_id", Some(client_id))
        .set("scope", Some(scope))
        .set("device_name", Some(device));
    let cb = callback(server, &signin, email).await;
    let code = query_param(&cb, "code").expect("callback carries a code");
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &signin.pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn desktop(server: &TestServer, email: &str, device: &str) -> Value {
    sign_in_as(server, email, "latchkey-desktop", device, ACCOUNT_SCOPE).await
}

fn sid(tokens: &Value) -> String {
    let at = tokens["access_token"].as_str().unwrap();
    jsonwebtoken::dangerous::insecure_decode::<Value>(at)
        .unwrap()
        .claims["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn bearer(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_string()
}

/// One API call with a bearer token; status and JSON body.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(server, reqwest::Method::GET, token, path, None).await
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(server, reqwest::Method::POST, token, path, Some(body)).await
}

async fn delete(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(server, reqwest::Method::DELETE, token, path, None).await
}

fn all_sessions(list: &Value) -> Vec<Value> {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["sessions"].as_array().unwrap().clone())
        .collect()
}

fn find_session(list: &Value, id: &str) -> Value {
    all_sessions(list)
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("session {id} is listed in {list}"))
}

fn signal_kinds(session: &Value) -> Vec<String> {
    session["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn audit_count(server: &TestServer) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log")
        .fetch_one(server.db.read())
        .await
        .unwrap()
}

async fn refresh_from(
    server: &TestServer,
    token: &str,
    ip: &str,
    user_agent: &str,
) -> (u16, Value) {
    let res = server
        .http
        .post(server.url("/token"))
        .header("x-forwarded-for", ip)
        .header("user-agent", user_agent)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "latchkey-desktop"),
            ("refresh_token", token),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn sessions_are_listed_by_device_with_the_current_one_marked(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    server.add_other_app().await;
    let laptop = desktop(&server, "alice@example.com", "Alice's laptop").await;
    let phone = sign_in_as(
        &server,
        "alice@example.com",
        "other-app",
        "Alice's phone",
        ACCOUNT_SCOPE,
    )
    .await;

    let (status, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(list["devices"].as_array().unwrap().len(), 2, "{list}");
    let mine = find_session(&list, &sid(&laptop));
    assert_eq!(mine["current"], true);
    assert_eq!(mine["device"]["name"], "Alice's laptop");
    assert_eq!(mine["device"]["platform"], "Linux");
    assert_eq!(mine["app"], "Latchkey Desktop");
    assert_eq!(mine["state"], "active");
    assert_eq!(mine["first_seen"]["ip"], "127.0.0.1");
    assert!(mine["last_used_at"].as_str().unwrap().ends_with('Z'));
    let other = find_session(&list, &sid(&phone));
    assert_eq!(other["current"], false);
    assert_eq!(other["app"], "Other app");
    assert_eq!(other["client_id"], "other-app");
    let current_device = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["current"] == true)
        .unwrap();
    assert_eq!(current_device["device"]["name"], "Alice's laptop");

    // Paging and filters.
    let (_, page) = get(&server, &bearer(&laptop), "/api/v1/me/sessions?limit=1").await;
    assert_eq!(all_sessions(&page).len(), 1);
    assert_eq!(page["next_offset"], 1);
    assert_eq!(page["total"], 2);
    let (_, page2) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?limit=1&offset=1",
    )
    .await;
    assert_eq!(all_sessions(&page2).len(), 1);
    assert_eq!(page2["next_offset"], Value::Null);
    assert_ne!(all_sessions(&page)[0]["id"], all_sessions(&page2)[0]["id"]);
    let (_, revoked) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?state=revoked",
    )
    .await;
    assert_eq!(revoked["total"], 0);
    // Whatever the filter, the counts for every filter's button.
    assert_eq!(
        revoked["counts"],
        json!({"all": 2, "active": 2, "revoked": 0, "expired": 0, "suspicious": 0})
    );
    let (status, bad) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?state=sleeping",
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Oldest use first.
    server.clock.advance(Duration::from_secs(5));
    assert_eq!(
        server
            .refresh(laptop["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (_, newest) = get(&server, &bearer(&phone), "/api/v1/me/sessions").await;
    assert_eq!(all_sessions(&newest)[0]["id"], sid(&laptop));
    let (_, oldest) = get(
        &server,
        &bearer(&phone),
        "/api/v1/me/sessions?sort=last_used",
    )
    .await;
    assert_eq!(all_sessions(&oldest)[0]["id"], sid(&phone));

    let (status, me) = get(&server, &bearer(&laptop), "/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["session_id"], sid(&laptop));
    assert_eq!(me["staff"], false, "a user has no staff powers");
}

async fn the_authorization_matrix_holds(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    server.add_user("bob@example.com", Role::User).await;
    let staff_user = server.add_user("staff@example.com", Role::Support).await;
    let alice = desktop(&server, "alice@example.com", "laptop").await;
    let bob = desktop(&server, "bob@example.com", "desktop").await;
    let staff = desktop(&server, "staff@example.com", "helpdesk").await;
    let (a, b, s) = (bearer(&alice), bearer(&bob), bearer(&staff));
    let bob_sid = sid(&bob);
    assert_eq!(
        get(&server, &s, "/api/v1/me").await.1["staff"],
        true,
        "staff signed in through the browser have their powers"
    );
    let bob_id = get(&server, &b, "/api/v1/me").await.1["id"]
        .as_str()
        .unwrap()
        .to_string();

    // No token, a garbage token, a token without the account scope.
    let res = server
        .http
        .get(server.url("/api/v1/me/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        get(&server, "not-a-jwt", "/api/v1/me/sessions").await.0,
        401
    );
    let narrow = sign_in_as(
        &server,
        "alice@example.com",
        "latchkey-desktop",
        "laptop",
        "openid offline_access",
    )
    .await;
    let (status, body) = get(&server, &bearer(&narrow), "/api/v1/me/sessions").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );

    // Alice gets 404 for anything of Bob's, and nothing of Bob's changes.
    let before = audit_count(&server).await;
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/me/sessions/{bob_sid}/family"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/me/sessions/{bob_sid}"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/me/sessions/{bob_sid}/acknowledge"),
        ),
    ] {
        let (status, body) = call(&server, method.clone(), &a, &path, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    assert_eq!(
        audit_count(&server).await,
        before,
        "refused calls change nothing"
    );
    let (_, bobs) = get(&server, &b, "/api/v1/me/sessions").await;
    assert_eq!(find_session(&bobs, &bob_sid)["state"], "active");
    let (_, alices) = get(
        &server,
        &a,
        &format!("/api/v1/me/events?session_id={bob_sid}"),
    )
    .await;
    assert_eq!(
        alices["events"],
        json!([]),
        "events of another account are not listed"
    );

    // A user gets 403 on every admin endpoint.
    let admin_calls = [
        (
            reqwest::Method::GET,
            "/api/v1/admin/users?q=bob".to_string(),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/admin/users/{bob_id}/sessions"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/admin/sessions/{bob_sid}/family"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/admin/events?user_id={bob_id}"),
            None,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/admin/audit".to_string(),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/sessions/{bob_sid}/revoke"),
            Some(json!({ "reason": "ticket 1" })),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{bob_id}/revoke-all"),
            Some(json!({ "reason": "ticket 1" })),
        ),
    ];
    // Alice asked for `support` like the desktop app does, and was not granted it.
    assert!(!scope_of(&alice).contains("support"), "{alice}");
    assert!(scope_of(&staff).contains("support"), "{staff}");
    for (method, path, body) in &admin_calls {
        let (status, err) = call(&server, method.clone(), &a, path, body.clone()).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{method} {path}"
        );
    }
    assert_eq!(audit_count(&server).await, before);

    // Staff without a reason get 400, and nothing happens.
    for path in [
        format!("/api/v1/admin/sessions/{bob_sid}/revoke"),
        format!("/api/v1/admin/users/{bob_id}/revoke-all"),
    ] {
        for body in [json!({}), json!({ "reason": "   " })] {
            let (status, err) = post(&server, &s, &path, body).await;
            assert_eq!(
                (status, err["error"].as_str()),
                (400, Some("invalid_request")),
                "{path}"
            );
        }
        let res = server
            .http
            .post(server.url(&path))
            .bearer_auth(&s)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(audit_count(&server).await, before);
    assert_eq!(
        find_session(&get(&server, &b, "/api/v1/me/sessions").await.1, &bob_sid)["state"],
        "active"
    );

    // Every staff call leaves exactly one audit record, naming the staff member.
    for (method, path, body) in &admin_calls {
        let before = audit_count(&server).await;
        let (status, out) = call(&server, method.clone(), &s, path, body.clone()).await;
        assert_eq!(status, 200, "{method} {path}: {out}");
        assert_eq!(audit_count(&server).await, before + 1, "{method} {path}");
        let last = audit::list(
            &server.db,
            &audit::Filter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0);
        assert_eq!(last.actor_kind, ActorKind::Support);
        assert_eq!(last.actor_id.as_deref(), Some(staff_user.id.as_str()));
        assert!(last.action.starts_with("admin."), "{}", last.action);
        assert_eq!(last.ip.as_deref(), Some("127.0.0.1"));
        if body.is_some() {
            assert_eq!(last.reason.as_deref(), Some("ticket 1"));
        }
    }
    // Staff never see secrets: no token or hash fields anywhere in what they read.
    let (_, family) = get(
        &server,
        &s,
        &format!("/api/v1/admin/sessions/{bob_sid}/family"),
    )
    .await;
    let text = family.to_string();
    for needle in ["lkrt_", "secret", "hash", "password"] {
        assert!(!text.contains(needle), "{needle} in {text}");
    }
}

fn scope_of(tokens: &Value) -> String {
    tokens["scope"].as_str().unwrap().to_string()
}

/// The security review's finding: a support agent signing in to a third-party app handed it
/// the support API. Now the app cannot ask for it, what it gets is not for this API, and a
/// staff token stops working the moment the role is taken away.
async fn a_third_party_app_never_reaches_the_support_api(backend: Backend) {
    let server = TestServer::start(backend).await;
    let agent = server.add_user("agent@example.com", Role::Support).await;
    server.add_user("carol@example.com", Role::User).await;
    let secret = server
        .add_client("billing", "Billing", ClientKind::Confidential, &[], false)
        .await
        .unwrap();

    // Asking for what it is not registered for: refused back to the app, before any sign-in.
    for scope in [
        "openid account",
        "openid support",
        "openid email offline_access account support",
    ] {
        let signin = SignIn::new()
            .set("client_id", Some("billing"))
            .set("scope", Some(scope));
        let res = browser()
            .get(signin.authorize_url(&server))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{scope}");
        let location = res.headers()["location"].to_str().unwrap();
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some("invalid_scope"),
            "{location}"
        );
    }
    // What it may have, it gets; and its token is for userinfo, not the account API.
    let tokens = sign_in_with(
        &server,
        "agent@example.com",
        "billing",
        Some(&secret),
        "openid profile email offline_access",
    )
    .await;
    let at = bearer(&tokens);
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&at)
        .unwrap()
        .claims;
    assert_eq!(claims["aud"], server.base);
    for path in [
        "/api/v1/admin/users",
        "/api/v1/admin/audit",
        "/api/v1/me/sessions",
    ] {
        let (status, err) = get(&server, &at, path).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}"
        );
    }
    assert_eq!(userinfo_status(&server, &at).await, 200);

    // A client narrowed after the fact loses what it had at its next refresh.
    let first_party = server
        .add_client("portal", "Portal", ClientKind::Confidential, &[], true)
        .await
        .unwrap();
    let portal = sign_in_with(
        &server,
        "agent@example.com",
        "portal",
        Some(&first_party),
        "openid offline_access account support",
    )
    .await;
    assert_eq!(scope_of(&portal), "openid offline_access account support");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&bearer(&portal))
        .unwrap()
        .claims;
    assert_eq!(
        claims["aud"],
        json!([server.base, format!("{}/api/v1", server.base)])
    );
    assert_eq!(
        get(&server, &bearer(&portal), "/api/v1/admin/users")
            .await
            .0,
        200
    );
    sqlx::query("UPDATE clients SET scopes = 'openid offline_access' WHERE client_id = 'portal'")
        .execute(server.db.write())
        .await
        .unwrap();
    // A replica that has not cached the client yet (the cache holds clients for seconds).
    let replica = server.replica().await;
    let (status, refreshed) = replica
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "portal"),
                ("client_secret", &first_party),
                ("refresh_token", portal["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(scope_of(&refreshed), "openid offline_access");
    assert_eq!(
        get(&server, &bearer(&refreshed), "/api/v1/admin/users")
            .await
            .0,
        403
    );

    // A staff token outlives the role: the role is read on every call.
    let desktop_staff = desktop(&server, "agent@example.com", "helpdesk").await;
    assert_eq!(
        get(&server, &bearer(&desktop_staff), "/api/v1/admin/users")
            .await
            .0,
        200
    );
    sqlx::query("UPDATE users SET role = 'user' WHERE id = $1")
        .bind(&agent.id)
        .execute(server.db.write())
        .await
        .unwrap();
    let (status, err) = get(&server, &bearer(&desktop_staff), "/api/v1/admin/users").await;
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")));
}

/// Control characters (NUL above all, which PostgreSQL refuses in text) wherever input enters:
/// a clear 400 or 401 in the endpoint's own format, never a 500.
async fn control_characters_are_refused_where_input_enters(backend: Backend) {
    use base64::Engine;
    let server = TestServer::start(backend).await;
    server.add_user("staff@example.com", Role::Support).await;
    let staff = desktop(&server, "staff@example.com", "helpdesk").await;
    let s = bearer(&staff);
    let basic = |id: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:secret"))
        )
    };
    for path in ["/token", "/revoke", "/introspect"] {
        for id in ["latchkey\0desktop", "api\u{1b}[31m", "x\r\ny"] {
            let res = server
                .http
                .post(server.url(path))
                .header("authorization", basic(id))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "x"),
                    ("token", "x"),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_client")),
                "{path} {id:?}"
            );
        }
    }
    for (path, code) in [
        ("/api/v1/me/sessions/a%00b/family", 400),
        ("/api/v1/me/sessions/%FF%FE/family", 400),
        ("/api/v1/me/events?kind=a%00b", 400),
        ("/api/v1/me/events?session_id=%01", 400),
        ("/api/v1/admin/users?q=al%00ice", 400),
        ("/api/v1/admin/users/x%00y/sessions", 400),
        ("/api/v1/admin/audit?action=admin.%00", 400),
        ("/api/v1/admin/events?user_id=%00", 400),
    ] {
        let (status, body) = get(&server, &s, path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (code, Some("invalid_request")),
            "{path}: {body}"
        );
    }
    let (status, body) = call(
        &server,
        reqwest::Method::DELETE,
        &s,
        "/api/v1/me/sessions/a%00b",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = post(
        &server,
        &s,
        "/api/v1/admin/sessions/a%00b/revoke",
        json!({ "reason": "ticket 1" }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // The sign-in form: a page, never a redirect or a 500.
    let res = browser()
        .post(server.url("/authorize"))
        .form(&[
            ("request", "a\0b"),
            ("csrf_token", "x"),
            ("username", "a@b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("<html"));
}

/// Runs the `latchkeyd` binary against the test server's database, as an operator would.
fn operator_cli(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .args(args)
        .args(["--database", &server.database, "--master-key-file"])
        .arg(server.dir.path().join("master.key"))
        .env("LOGNAME", "ops-alice")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `user disable` signs an account out everywhere and keeps it out until `user enable`;
/// `client remove` signs out everything signed in through the client, and registering the
/// same id again revives none of it. Each is in the audit log, by the operator's name.
async fn operators_disable_accounts_and_remove_clients_for_good(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("mallory@example.com", Role::User).await;
    let laptop = desktop(&server, "mallory@example.com", "laptop").await;
    let phone = desktop(&server, "mallory@example.com", "phone").await;

    let (ok, out, err) = operator_cli(&server, &["user", "disable", "mallory@example.com"]);
    assert!(ok, "{err}");
    assert!(out.contains("2 session(s) signed out"), "{out}");
    for tokens in [&laptop, &phone] {
        let (status, body) = server
            .refresh(tokens["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(userinfo_status(&server, &bearer(tokens)).await, 401);
    }
    // Nor can it sign in again: the password is refused like a wrong one.
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    let res = submit_form(&server, &browser, &page, "mallory@example.com", PASSWORD).await;
    assert_eq!(res.status(), 401);
    let (_, out, _) = operator_cli(&server, &["user", "list"]);
    assert!(
        out.lines()
            .any(|l| l.contains("mallory@example.com") && l.ends_with("disabled")),
        "{out}"
    );

    let (ok, _, err) = operator_cli(&server, &["user", "enable", "mallory@example.com"]);
    assert!(ok, "{err}");
    let again = desktop(&server, "mallory@example.com", "laptop").await;
    assert_eq!(userinfo_status(&server, &bearer(&again)).await, 200);
    assert_eq!(
        server
            .refresh(laptop["refresh_token"].as_str().unwrap())
            .await
            .0,
        400,
        "the old sessions stay signed out"
    );

    // A client removed: its sessions end, and the same id registered again revives nothing.
    let add_kiosk = [
        "client",
        "add",
        "kiosk",
        "--name",
        "Kiosk",
        "--redirect-uri",
        "http://127.0.0.1/callback",
    ];
    let (ok, out, err) = operator_cli(&server, &add_kiosk);
    assert!(ok, "{err}");
    assert!(out.contains("openid profile email offline_access"), "{out}");
    let kiosk = sign_in_as(
        &server,
        "mallory@example.com",
        "kiosk",
        "kiosk",
        "openid offline_access",
    )
    .await;
    let (ok, out, err) = operator_cli(&server, &["client", "remove", "kiosk"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 session(s) signed out"), "{out}");
    let (ok, _, err) = operator_cli(&server, &add_kiosk);
    assert!(ok, "{err}");
    let replica = server.replica().await; // no cached copy of the old registration
    let (status, body) = replica
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "kiosk"),
                ("refresh_token", kiosk["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(userinfo_status(&replica, &bearer(&kiosk)).await, 401);

    // Every operator action, by name.
    let (_, log, _) = operator_cli(&server, &["audit", "export"]);
    let ops: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["actor_kind"] == "operator" && r["actor_id"] == "ops-alice")
        .collect();
    let actions: Vec<&str> = ops.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "user.disable",
            "user.enable",
            "client.add",
            "client.remove",
            "client.add"
        ]
    );
    assert_eq!(
        ops[0]["details"]["revoked_sessions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (ok, _, err) = operator_cli(&server, &["keys", "rotate"]);
    assert!(ok, "{err}");
    let (_, log, _) = operator_cli(&server, &["audit", "export"]);
    assert!(log.lines().last().unwrap().contains("\"keys.rotate\""));
    let (ok, _, err) = operator_cli(&server, &["audit", "verify"]);
    assert!(ok, "{err}");
}

async fn revocation_reaches_refresh_introspection_and_the_api_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let stolen = desktop(&server, "alice@example.com", "old phone").await;
    assert_eq!(userinfo_status(&server, &bearer(&stolen)).await, 200);
    assert_eq!(get(&server, &bearer(&stolen), "/api/v1/me").await.0, 200);

    let (status, revoked) = delete(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{}", sid(&stolen)),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["revoked"]["by"], "user");

    let (status, body) = server
        .refresh(stolen["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(userinfo_status(&server, &bearer(&stolen)).await, 401);
    let (status, body) = get(&server, &bearer(&stolen), "/api/v1/me/sessions").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    // The calling device is untouched.
    assert_eq!(
        server
            .refresh(laptop["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );

    // Sign out every other device.
    let third = desktop(&server, "alice@example.com", "tablet").await;
    let (status, out) = post(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions/revoke-others",
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(out["revoked"], json!([sid(&third)]));
    assert_eq!(
        server
            .refresh(third["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );
    let (_, list) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?state=active",
    )
    .await;
    assert_eq!(list["total"], 1);
    assert_eq!(all_sessions(&list)[0]["current"], true);
}

async fn a_replayed_token_shows_in_the_family_chain(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let victim = desktop(&server, "alice@example.com", "phone").await;
    let first = victim["refresh_token"].as_str().unwrap().to_string();
    server.clock.advance(Duration::from_secs(60));
    let (status, second) = server.refresh(&first).await;
    assert_eq!(status, 200);
    // The attacker's copy of the first token comes back.
    let (status, _) = refresh_from(&server, &first, "127.0.0.1", "attacker/1.0").await;
    assert_eq!(status, 400);
    assert_eq!(
        server
            .refresh(second["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );

    let (_, list) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?suspicious=true",
    )
    .await;
    assert_eq!(list["total"], 1, "{list}");
    let session = find_session(&list, &sid(&victim));
    assert_eq!(session["state"], "revoked");
    assert_eq!(session["revoked"]["reason"], "reuse_detected");
    assert_eq!(session["suspicious"], true);
    assert!(signal_kinds(&session).contains(&"reuse_detected".to_string()));
    let signal = session["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "reuse_detected")
        .unwrap();
    assert_eq!(signal["severity"], "high");
    assert_eq!(signal["details"]["replayed_generation"], 1);
    assert_eq!(signal["details"]["retired_by_ip"], "127.0.0.1");
    assert!(signal["summary"]
        .as_str()
        .unwrap()
        .contains("already been used"));

    let (status, family) = get(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{}/family", sid(&victim)),
    )
    .await;
    assert_eq!(status, 200, "{family}");
    let generations = family["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 2, "{family}");
    assert_eq!(generations[0]["generation"], 2, "newest first");
    assert_eq!(generations[0]["state"], "revoked");
    assert_eq!(generations[0]["retired_reason"], "reuse_detected");
    assert_eq!(generations[1]["generation"], 1);
    assert_eq!(generations[1]["state"], "rotated");
    assert_eq!(generations[1]["used_by"]["ip"], "127.0.0.1");
    assert!(generations[1]["used_at"].is_string());
    let replay_events: Vec<&str> = generations[1]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        replay_events.contains(&"reuse_detected"),
        "{replay_events:?}"
    );
    let reuse = family["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reuse_detected")
        .unwrap();
    assert_eq!(
        reuse["user_agent"], "attacker/1.0",
        "the replay's evidence is its own request"
    );
    assert_eq!(reuse["generation"], 1);

    // Chain paging.
    let (_, page) = get(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{}/family?limit=1", sid(&victim)),
    )
    .await;
    assert_eq!(page["generations"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_before"], 2);
    let (_, older) = get(
        &server,
        &bearer(&laptop),
        &format!(
            "/api/v1/me/sessions/{}/family?limit=1&before=2",
            sid(&victim)
        ),
    )
    .await;
    assert_eq!(older["generations"][0]["generation"], 1);
    assert_eq!(older["next_before"], Value::Null);

    // The audit log has the reuse, as a system action about Alice's session.
    let records = audit::list(
        &server.db,
        &audit::Filter {
            action: Some("event.reuse_detected".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].actor_kind, ActorKind::System);
    assert_eq!(
        records[0].target_session_id.as_deref(),
        Some(sid(&victim).as_str())
    );
}

async fn signals_are_raised_with_evidence_and_acknowledged(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.trust_forwarded_for = true;
        s.signals.storm_refreshes_per_minute = 5;
        s.tokens.access_token_ttl_secs = 3600;
    })
    .await;
    server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let tokens = desktop(&server, "alice@example.com", "phone").await;
    let phone = sid(&tokens);
    let mut rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let step = |rt: &mut String, body: Value| {
        *rt = body["refresh_token"].as_str().unwrap().to_string();
    };

    // The code was redeemed from 127.0.0.1 by a client with no user agent; one refresh from
    // there, the next from another network with other software ten seconds later.
    let (status, body) = refresh_from(&server, &rt, "192.0.2.10", "latchkey/0.1.0").await;
    assert_eq!(status, 200, "{body}");
    step(&mut rt, body);
    server.clock.advance(Duration::from_secs(10));
    let (status, body) = refresh_from(&server, &rt, "198.51.100.7", "curl/8.5.0").await;
    assert_eq!(status, 200, "{body}");
    step(&mut rt, body);
    // Same network, an updated app: quiet.
    let (_, body) = refresh_from(&server, &rt, "198.51.100.99", "curl/8.6.1").await;
    step(&mut rt, body);

    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    let session = find_session(&list, &phone);
    let kinds = signal_kinds(&session);
    assert!(kinds.contains(&"concurrent_use".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"user_agent_changed".to_string()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "concurrent_use").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(session["suspicious"], true);
    let concurrent = session["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "concurrent_use" && s["details"]["network"] == "198.51.100.0/24")
        .unwrap();
    assert_eq!(concurrent["severity"], "high");
    assert_eq!(concurrent["details"]["previous_network"], "192.0.2.0/24");
    assert_eq!(concurrent["details"]["seconds_apart"], 10);
    assert_eq!(concurrent["ip"], "198.51.100.7");
    let ua = session["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "user_agent_changed")
        .unwrap();
    assert_eq!(ua["details"]["previous_user_agent"], "latchkey/0.1.0");
    assert_eq!(ua["details"]["user_agent"], "curl/8.5.0");

    // Ten minutes later from yet another network: only a low-severity change.
    server.clock.advance(Duration::from_secs(600));
    let (_, body) = refresh_from(&server, &rt, "203.0.113.1", "curl/8.6.1").await;
    let phone_access = bearer(&body);
    step(&mut rt, body);
    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    let changed = find_session(&list, &phone)["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "address_changed")
        .cloned()
        .expect("address_changed");
    assert_eq!(changed["severity"], "low");

    // The flagged session cannot vouch for itself: whoever holds its token could say it.
    let res = server
        .http
        .post(server.url(&format!("/api/v1/me/sessions/{phone}/acknowledge")))
        .bearer_auth(&phone_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\", error_description=\"a session cannot vouch for itself"),
        "{challenge}"
    );
    assert!(challenge.ends_with("max_age=300"), "{challenge}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication");
    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    assert_eq!(
        find_session(&list, &phone)["suspicious"],
        true,
        "still flagged"
    );

    // "This was me" from another session of the account clears them, and is recorded.
    let (status, acked) = post(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{phone}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["suspicious"], false);
    assert_eq!(acked["signals"], json!([]));
    let (_, suspicious) = get(
        &server,
        &bearer(&laptop),
        "/api/v1/me/sessions?suspicious=true",
    )
    .await;
    assert_eq!(suspicious["total"], 0);
    let records = audit::list(
        &server.db,
        &audit::Filter {
            action: Some("event.signal_acknowledged".into()),
            limit: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].actor_kind, ActorKind::User);

    // A storm: more than 5 refreshes within a minute, raised once.
    for _ in 0..8 {
        let (status, body) = refresh_from(&server, &rt, "203.0.113.1", "curl/8.6.1").await;
        assert_eq!(status, 200);
        step(&mut rt, body);
    }
    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    let session = find_session(&list, &phone);
    let storms: Vec<&Value> = session["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "refresh_storm")
        .collect();
    assert_eq!(storms.len(), 1, "{session}");
    assert_eq!(storms[0]["details"]["refreshes_in_window"], 6);
    assert_eq!(storms[0]["severity"], "medium");
    assert_eq!(session["suspicious"], true);
    assert_eq!(
        session["state"], "active",
        "signals alone revoke nothing by default"
    );
}

async fn high_severity_signals_can_revoke_at_once(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.trust_forwarded_for = true;
        s.signals.auto_revoke_high = true;
    })
    .await;
    server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let tokens = desktop(&server, "alice@example.com", "phone").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    // The same network as the sign-in (127.0.0.1): nothing to see.
    let (status, body) = refresh_from(&server, rt, "127.0.0.2", "app").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh_from(
        &server,
        body["refresh_token"].as_str().unwrap(),
        "198.51.100.7",
        "app",
    )
    .await;
    assert_error(status, &body, 400, "invalid_grant");
    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    let phone = find_session(&list, &sid(&tokens));
    assert_eq!(phone["state"], "revoked");
    assert_eq!(phone["revoked"]["reason"], "auto_revoked_concurrent_use");
}

async fn a_new_device_is_noted_but_not_alarming(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let again = desktop(&server, "alice@example.com", "laptop").await;
    let kiosk = desktop(&server, "alice@example.com", "internet cafe").await;
    let (_, list) = get(&server, &bearer(&laptop), "/api/v1/me/sessions").await;
    assert!(
        signal_kinds(&find_session(&list, &sid(&laptop))).is_empty(),
        "the first sign-in is not news"
    );
    assert!(
        signal_kinds(&find_session(&list, &sid(&again))).is_empty(),
        "a known device is not news"
    );
    let session = find_session(&list, &sid(&kiosk));
    assert_eq!(signal_kinds(&session), vec!["new_device".to_string()]);
    assert_eq!(session["signals"][0]["severity"], "low");
    assert_eq!(session["suspicious"], false);
}

async fn support_staff_find_inspect_and_revoke_with_a_reason(backend: Backend) {
    let server = TestServer::start(backend).await;
    let demo = server.add_user("demo@latchkey.local", Role::User).await;
    server
        .add_user("support@latchkey.local", Role::Support)
        .await;
    let phone = desktop(&server, "demo@latchkey.local", "phone").await;
    let staff = bearer(&desktop(&server, "support@latchkey.local", "helpdesk").await);

    let (status, found) = get(&server, &staff, "/api/v1/admin/users?q=DEMO@").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["users"].as_array().unwrap().len(), 1);
    assert_eq!(found["users"][0]["id"], demo.id.as_str());
    assert_eq!(found["users"][0]["live_sessions"], 1);
    let (_, by_id) = get(
        &server,
        &staff,
        &format!("/api/v1/admin/users?q={}", demo.id),
    )
    .await;
    assert_eq!(by_id["users"][0]["email"], "demo@latchkey.local");
    let (_, none) = get(&server, &staff, "/api/v1/admin/users?q=%25").await;
    assert_eq!(
        none["users"],
        json!([]),
        "LIKE wildcards are matched literally"
    );

    let (status, sessions) = get(
        &server,
        &staff,
        &format!("/api/v1/admin/users/{}/sessions", demo.id),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sessions["user"]["email"], "demo@latchkey.local");
    let session = find_session(&sessions, &sid(&phone));
    assert_eq!(session["current"], false, "no staff session is the user's");
    assert_eq!(
        get(&server, &staff, "/api/v1/admin/users/nobody/sessions")
            .await
            .0,
        404
    );

    let (status, revoked) = post(
        &server,
        &staff,
        &format!("/api/v1/admin/sessions/{}/revoke", sid(&phone)),
        json!({ "reason": "user reported a stolen phone (ticket 4711)" }),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["revoked"]["by"], "support");
    assert_eq!(
        revoked["revoked"]["reason"],
        "user reported a stolen phone (ticket 4711)"
    );
    assert_eq!(
        server
            .refresh(phone["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );

    let (status, log) = get(
        &server,
        &staff,
        &format!(
            "/api/v1/admin/audit?target_user_id={}&action=admin.session.revoke",
            demo.id
        ),
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let record = &log["records"][0];
    assert_eq!(
        record["reason"],
        "user reported a stolen phone (ticket 4711)"
    );
    assert_eq!(record["target_session_id"], sid(&phone));
    assert_eq!(record["actor_kind"], "support");
    // Who that was, as support staff read it: the account's email, looked up when listed.
    assert_eq!(record["actor_email"], "support@latchkey.local");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["hash"].as_str().unwrap().len(), 64);
    let (_, staff_reads) = get(&server, &staff, "/api/v1/admin/audit?action=admin.&limit=2").await;
    assert_eq!(staff_reads["records"].as_array().unwrap().len(), 2);
    assert!(staff_reads["next_before"].is_i64());
    let (status, err) = get(&server, &staff, "/api/v1/admin/audit?since=yesterday").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let (_, events) = get(
        &server,
        &staff,
        &format!(
            "/api/v1/admin/events?user_id={}&kind=session_revoked",
            demo.id
        ),
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);

    // Revoke-all ends the rest, with one audit record for the lot.
    let again = desktop(&server, "demo@latchkey.local", "laptop").await;
    let other = desktop(&server, "demo@latchkey.local", "tablet").await;
    let (status, out) = post(
        &server,
        &staff,
        &format!("/api/v1/admin/users/{}/revoke-all", demo.id),
        json!({ "reason": "account recovery" }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(out["revoked"].as_array().unwrap().len(), 2);
    for t in [&again, &other] {
        assert_eq!(
            server.refresh(t["refresh_token"].as_str().unwrap()).await.0,
            400
        );
    }
    let (_, log) = get(
        &server,
        &staff,
        "/api/v1/admin/audit?action=admin.user.revoke_all",
    )
    .await;
    assert_eq!(log["records"].as_array().unwrap().len(), 1);
    assert_eq!(
        log["records"][0]["details"]["revoked_sessions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// The fields an audit record's link covers, in their order (as `store::audit` hashes them).
#[derive(serde::Serialize)]
struct Linked<'a> {
    seq: i64,
    at: i64,
    actor_kind: &'a str,
    actor_id: Option<&'a str>,
    action: &'a str,
    target_user_id: Option<&'a str>,
    target_session_id: Option<&'a str>,
    reason: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    details: &'a str,
}

/// What someone with write access to the database, but not the master key, can compute: the
/// unkeyed SHA-256 link of a record.
fn forged_link(prev: &str, row: &sqlx::any::AnyRow) -> String {
    use sha2::{Digest, Sha256};
    use sqlx::Row;
    let text = |c: &str| row.try_get::<Option<String>, _>(c).unwrap();
    let (actor_kind, action, details) = (
        text("actor_kind").unwrap(),
        text("action").unwrap(),
        text("details").unwrap(),
    );
    let (actor_id, user, session, reason, ip, ua) = (
        text("actor_id"),
        text("target_user_id"),
        text("target_session_id"),
        text("reason"),
        text("ip"),
        text("user_agent"),
    );
    let body = serde_json::to_string(&Linked {
        seq: row.try_get("seq").unwrap(),
        at: row.try_get("at").unwrap(),
        actor_kind: &actor_kind,
        actor_id: actor_id.as_deref(),
        action: &action,
        target_user_id: user.as_deref(),
        target_session_id: session.as_deref(),
        reason: reason.as_deref(),
        ip: ip.as_deref(),
        user_agent: ua.as_deref(),
        details: &details,
    })
    .unwrap();
    let digest = Sha256::new()
        .chain_update(prev.as_bytes())
        .chain_update(b"\n")
        .chain_update(body.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The statements that relink `rows` from `prev` on with forged links, and set the head to
/// the last; and that last link.
fn forged_chain(
    mut prev: String,
    rows: &[sqlx::any::AnyRow],
) -> (Vec<(&'static str, Vec<String>)>, String) {
    use sqlx::Row;
    let mut relink = Vec::new();
    for row in rows {
        let link = forged_link(&prev, row);
        let seq: i64 = row.try_get("seq").unwrap();
        relink.push((
            "UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = CAST($3 AS BIGINT)",
            vec![prev.clone(), link.clone(), seq.to_string()],
        ));
        prev = link;
    }
    relink.push((
        "UPDATE audit_head SET hash = $1 WHERE id = 1",
        vec![prev.clone()],
    ));
    (relink, prev)
}

/// Drops the database's guard on the audit log, runs `sql`, and puts the guard back: what an
/// attacker with the database's credentials can do.
async fn behind_the_guard(server: &TestServer, backend: Backend, sql: &[(&str, Vec<String>)]) {
    let db = server.db.write();
    let (drop, restore): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ],
            &[
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
                "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
            ],
        ),
        Backend::Postgres => (
            &["ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"],
            &["ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change"],
        ),
    };
    for q in drop {
        sqlx::query(q).execute(db).await.unwrap();
    }
    for (q, binds) in sql {
        let mut query = sqlx::query(q);
        for b in binds {
            query = query.bind(b.as_str());
        }
        query.execute(db).await.unwrap();
    }
    for q in restore {
        sqlx::query(q).execute(db).await.unwrap();
    }
}

async fn the_audit_log_is_append_only_and_tampering_is_caught(backend: Backend) {
    use sqlx::Row;
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    server.add_user("staff@example.com", Role::Support).await;
    let a = desktop(&server, "alice@example.com", "laptop").await;
    let b = desktop(&server, "alice@example.com", "phone").await;
    let staff = desktop(&server, "staff@example.com", "helpdesk").await;
    delete(
        &server,
        &bearer(&a),
        &format!("/api/v1/me/sessions/{}", sid(&b)),
    )
    .await;
    // Two staff records: the ones an insider would want gone.
    let (status, _) = get(&server, &bearer(&staff), "/api/v1/admin/users?q=alice").await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &server,
        &bearer(&staff),
        &format!("/api/v1/admin/sessions/{}/revoke", sid(&a)),
        json!({ "reason": "ticket 7" }),
    )
    .await;
    assert_eq!(status, 200);
    let count = audit_count(&server).await;
    assert!(
        count >= 7,
        "sign-ins, sessions, revocations and staff calls are audited: {count}"
    );
    let key = latchkeyd::store::audit::ChainKey::derive(
        &latchkeyd::crypto::MasterKey::load_or_create(&server.dir.path().join("master.key"))
            .unwrap(),
    );
    match audit::verify(&server.db, &key, &[]).await.unwrap() {
        Verdict::Intact {
            records, unkeyed, ..
        } => assert_eq!((records, unkeyed), (count, 0)),
        broken => panic!("{broken:?}"),
    }
    let cli = |args: &[&str]| operator_cli(&server, args);
    let (ok, out, err) = cli(&["audit", "verify"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{count} records")), "{out}");
    assert!(out.contains("no checkpoint given"), "{out}");

    // A signed checkpoint, kept outside the database.
    let (ok, line, err) = cli(&["audit", "checkpoint"]);
    assert!(ok, "{err}");
    let checkpoints = server.dir.path().join("checkpoints.jsonl");
    std::fs::write(&checkpoints, &line).unwrap();
    let cp: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(cp["records"], count);
    let checked = [
        "audit",
        "verify",
        "--checkpoint",
        checkpoints.to_str().unwrap(),
    ];
    let (ok, out, err) = cli(&checked);
    assert!(ok, "{err}");
    assert!(out.contains("matches 1 checkpoint"), "{out}");

    let export = cli(&["audit", "export"]).1;
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, count);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert_eq!(lines[count as usize - 1]["action"], "admin.session.revoke");

    // The database itself refuses edits and deletions.
    let db = server.db.write();
    assert!(
        sqlx::query("UPDATE audit_log SET reason = 'x' WHERE seq = 2")
            .execute(db)
            .await
            .is_err()
    );
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(db)
        .await
        .is_err());

    // The reproduced attack: the guard dropped, the two staff records deleted from the end, the
    // head set to the record before them, the guard restored. The chain alone cannot tell; the
    // checkpoint does.
    let kept = lines[count as usize - 3].clone();
    behind_the_guard(
        &server,
        backend,
        &[
            (
                "DELETE FROM audit_log WHERE seq > CAST($1 AS BIGINT)",
                vec![(count - 2).to_string()],
            ),
            (
                "UPDATE audit_head SET seq = seq - 2, hash = $1 WHERE id = 1",
                vec![kept["hash"].as_str().unwrap().to_string()],
            ),
        ],
    )
    .await;
    let (ok, out, _) = cli(&["audit", "verify"]);
    assert!(ok, "a cut-off tail is invisible to the chain alone: {out}");
    let (ok, _, err) = cli(&checked);
    assert!(!ok, "the checkpoint catches the cut-off tail");
    assert!(
        err.contains(&format!("tampered with at record {}", count - 1))
            && err.contains("removed from the end"),
        "{err}"
    );

    // An edit, with every link after it recomputed the only way possible without the master
    // key (plain SHA-256): caught by the chain alone, at the edited record.
    behind_the_guard(
        &server,
        backend,
        &[(
            "UPDATE audit_log SET ip = '203.0.113.9' WHERE seq = 2",
            vec![],
        )],
    )
    .await;
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(server.db.read())
        .await
        .unwrap();
    let (relink, _) = forged_chain(rows[0].try_get("hash").unwrap(), &rows[1..]);
    behind_the_guard(&server, backend, &relink).await;
    assert_eq!(
        audit::verify(&server.db, &key, &[]).await.unwrap(),
        Verdict::Broken {
            seq: 2,
            problem: "its content does not match its link (the record was edited, or written without this server's master key)".into()
        }
    );
    let (ok, _, err) = cli(&["audit", "verify"]);
    assert!(!ok);
    assert!(err.contains("tampered with at record 2"), "{err}");

    // The whole log rewritten with plain links from the first record on: it reads as a log
    // from before the chain was keyed, which `verify` says plainly; the checkpoint catches it.
    let (relink, prev) = forged_chain(latchkeyd::store::audit::GENESIS.into(), &rows);
    behind_the_guard(&server, backend, &relink).await;
    let (ok, out, _) = cli(&["audit", "verify"]);
    assert!(ok);
    assert!(
        out.contains(&format!(
            "records 1-{} were written before the chain was keyed",
            count - 2
        )),
        "{out}"
    );
    let (ok, _, err) = cli(&checked);
    assert!(!ok, "the checkpoint catches a rewrite of the whole log");
    assert!(
        err.contains("differs from the checkpoint") || err.contains("removed from the end"),
        "{err}"
    );

    // A checkpoint edited to match the forgery does not verify.
    let mut forged = cp.clone();
    let jws = cp["checkpoint"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({ "iss": "x", "records": count - 2, "head": prev, "at": 0 }).to_string(),
    );
    forged["checkpoint"] = json!(format!("{}.{payload}.{}", parts[0], parts[2]));
    std::fs::write(&checkpoints, forged.to_string()).unwrap();
    let (ok, _, err) = cli(&checked);
    assert!(!ok);
    assert!(err.contains("signature does not verify"), "{err}");
}

/// Reads the event stream until `needle` shows up (or fails after a few seconds).
async fn read_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(8), async {
        while !seen.contains(needle) {
            match res.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await;
    assert!(
        found.is_ok() && seen.contains(needle),
        "no {needle:?} in the stream: {seen}"
    );
}

/// The security review's flood: thousands of sign-in POSTs from one address. They are cut
/// off before the database, the few that get through are counted per window rather than one
/// audit record each, and the account holder's live stream stays current throughout.
async fn a_sign_in_flood_leaves_the_stream_current_and_the_audit_log_short(backend: Backend) {
    use futures_util::StreamExt;
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    let alice = server.add_user("alice@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let mut res = open_stream(&server, &laptop).await;
    let before = audit_count(&server).await;

    // The attacker's sign-in form, posted 10,000 times with wrong passwords for Alice and for
    // made-up accounts, 32 at a time.
    const ATTACKER: &str = "203.0.113.9";
    let attacker = browser();
    // A thousand sign-in pages asked for first: each would be a form written to the database.
    let forms_before = auth_requests(&server).await;
    let pages: Vec<u16> = futures_util::stream::iter(0..1_000)
        .map(|_| {
            let req = attacker
                .get(SignIn::new().authorize_url(&server))
                .header("x-forwarded-for", ATTACKER);
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let forms = auth_requests(&server).await - forms_before;
    assert!(forms <= 30, "{forms} forms written for 1,000 requests");
    assert_eq!(
        pages.iter().filter(|s| **s == 429).count() as i64,
        1_000 - forms
    );
    server.clock.advance(Duration::from_secs(60));
    let page = attacker
        .get(SignIn::new().authorize_url(&server))
        .header("x-forwarded-for", ATTACKER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (request, csrf) = (
        hidden(&page, "request").expect(&page),
        hidden(&page, "csrf_token").unwrap(),
    );
    let statuses: Vec<u16> = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let (attacker, url) = (attacker.clone(), server.url("/authorize"));
            let email = if i % 2 == 0 {
                "alice@example.com".to_string()
            } else {
                format!("guess{i}@example.com")
            };
            let form = [
                ("request", request.clone()),
                ("csrf_token", csrf.clone()),
                ("username", email),
                ("password", "wrong password".to_string()),
                ("action", "signin".to_string()),
            ];
            async move {
                attacker
                    .post(url)
                    .header("x-forwarded-for", ATTACKER)
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 9_950, "{refused} of 10,000 refused");
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429)));
    let flood_records = audit_count(&server).await - before;
    assert!(
        flood_records <= 40,
        "10,000 POSTs left {flood_records} audit records"
    );
    let throttled = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM security_events WHERE kind = 'signin_throttled'",
    )
    .fetch_one(server.db.read())
    .await
    .unwrap();
    assert!(
        throttled <= 2,
        "one report per limited subject: {throttled}"
    );

    // Alice, elsewhere, signs in and signs her phone out: her stream shows both at once.
    let phone = desktop(&server, "alice@example.com", "phone").await;
    let mut seen = String::new();
    read_until(&mut res, &mut seen, &sid(&phone)).await;
    delete(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{}", sid(&phone)),
    )
    .await;
    read_until(&mut res, &mut seen, "event: session_revoked").await;

    // When the window closes, the count of what was throttled is recorded, once.
    server.clock.advance(Duration::from_secs(16 * 60));
    let window = 15 * 60 * 1000;
    let closed =
        latchkeyd::store::throttle::close_reports(&server.db, window, server.clock.now_ms())
            .await
            .unwrap();
    assert_eq!(
        latchkeyd::store::throttle::close_reports(&server.db, window, server.clock.now_ms())
            .await
            .unwrap(),
        0,
        "closed once"
    );
    let events = latchkeyd::store::events::list(
        &server.db,
        &latchkeyd::store::events::Filter {
            user_id: Some(alice.id.clone()),
            kind: Some("signin_throttled".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e.details["summary"] == true)
        .collect();
    assert!(closed <= 2 && summaries.len() <= 1, "{events:?}");
    for s in summaries {
        assert!(s.details["attempts"].as_i64().unwrap() >= 2, "{s:?}");
        assert!(
            s.summary.contains("sign-in attempts were blocked"),
            "{}",
            s.summary
        );
    }
}

async fn auth_requests(server: &TestServer) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM auth_requests")
        .fetch_one(server.db.read())
        .await
        .unwrap()
}

/// With the per-address limit switched off, throttled attempts still cost no more than a
/// report per limited subject and window.
async fn throttled_sign_ins_are_counted_not_recorded_one_by_one(backend: Backend) {
    use futures_util::StreamExt;
    let server = TestServer::with(backend, |s| s.limits.authorize.per_minute = 0).await;
    server.add_user("alice@example.com", Role::User).await;
    let signin = SignIn::new();
    let (attacker, page) = open_form(&server, &signin).await;
    let before = audit_count(&server).await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..2_000)
        .map(|i| {
            let email = if i % 2 == 0 {
                "alice@example.com".to_string()
            } else {
                format!("guess{i}@example.com")
            };
            let (server, attacker, page) = (&server, &attacker, &page);
            async move {
                submit_form(server, attacker, page, &email, "wrong password")
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 1_950);
    let records = audit_count(&server).await - before;
    assert!(
        records <= 30,
        "2,000 throttled POSTs left {records} audit records"
    );
    let reports =
        sqlx::query_scalar::<_, i64>("SELECT CAST(SUM(attempts) AS BIGINT) FROM throttle_reports")
            .fetch_one(server.db.read())
            .await
            .unwrap();
    assert!(
        reports >= 1_950,
        "every throttled attempt is counted: {reports}"
    );
}

/// Opens the live stream of a session's own access token.
async fn open_stream(server: &TestServer, tokens: &Value) -> reqwest::Response {
    let res = server
        .http
        .get(server.url("/api/v1/me/events"))
        .bearer_auth(bearer(tokens))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Let the stream subscribe before anything happens.
    tokio::time::sleep(Duration::from_millis(700)).await;
    res
}

/// Reads the stream to its end; what it said. Fails if it is still open after a few seconds.
async fn read_to_end(mut res: reqwest::Response) -> String {
    let mut seen = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(bytes) = res.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream is still open: {seen}");
    seen
}

/// Whatever revokes a session (reuse, a second redemption of its code, the session cap), its
/// live stream ends with a `session_revoked` event.
async fn every_revocation_ends_the_sessions_stream(backend: Backend) {
    let server = TestServer::with(backend, |s| s.tokens.max_sessions_per_user = 3).await;
    server.add_user("alice@example.com", Role::User).await;

    // Reuse: the session's first refresh token, replayed after the rotation.
    let reused = desktop(&server, "alice@example.com", "laptop").await;
    let stream = open_stream(&server, &reused).await;
    let first = reused["refresh_token"].as_str().unwrap();
    assert_eq!(server.refresh(first).await.0, 200);
    assert_eq!(server.refresh(first).await.0, 400);
    let said = read_to_end(stream).await;
    let (cause, end) = (
        said.find("event: reuse_detected"),
        said.find("event: session_revoked"),
    );
    assert!(
        cause.is_some() && end.is_some() && cause < end,
        "the cause, then the end: {said}"
    );

    // A code redeemed twice.
    let signin = SignIn::new()
        .set("scope", Some(ACCOUNT_SCOPE))
        .set("device_name", Some("phone"));
    let cb = callback(&server, &signin, "alice@example.com").await;
    let code = query_param(&cb, "code").unwrap();
    let (status, twice) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 200);
    let stream = open_stream(&server, &twice).await;
    assert_eq!(exchange(&server, &code, &signin.pkce.verifier).await.0, 400);
    let said = read_to_end(stream).await;
    assert!(said.contains("authorization_code_reused"), "{said}");

    // The session cap: the least recently used session goes when one more signs in.
    let oldest = desktop(&server, "alice@example.com", "tablet").await;
    let stream = open_stream(&server, &oldest).await;
    server.clock.advance(Duration::from_secs(1));
    desktop(&server, "alice@example.com", "desktop").await;
    server.clock.advance(Duration::from_secs(1));
    desktop(&server, "alice@example.com", "watch").await;
    server.clock.advance(Duration::from_secs(1));
    desktop(&server, "alice@example.com", "tv").await;
    let said = read_to_end(stream).await;
    assert!(said.contains("session_limit"), "{said}");
}

async fn security_events_stream_live(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    server.add_user("bob@example.com", Role::User).await;
    let laptop = desktop(&server, "alice@example.com", "laptop").await;
    let mut res = server
        .http
        .get(server.url("/api/v1/me/events"))
        .bearer_auth(bearer(&laptop))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Let the stream subscribe before anything happens.
    tokio::time::sleep(Duration::from_millis(700)).await;

    // A burst of another account's events, larger than any page, all within the seconds the
    // poller looks back over: none of it may hold back Alice's events behind it.
    let bob = desktop(&server, "bob@example.com", "bob's").await;
    let bob_id = get(&server, &bearer(&bob), "/api/v1/me").await.1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let at = server.clock.now_ms() - 1_000;
    for chunk in 0..30 {
        let values: Vec<String> = (0..100)
            .map(|i| format!("('burst-{chunk:02}-{i:03}', {at}, 'signal_acknowledged', 'info', '{bob_id}', '{{}}')"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO security_events (id, at, kind, severity, user_id, details) VALUES {}",
            values.join(", ")
        ))
        .execute(server.db.write())
        .await
        .unwrap();
    }
    let phone = desktop(&server, "alice@example.com", "phone").await;
    let mut seen = String::new();
    read_until(&mut res, &mut seen, &sid(&phone)).await;
    assert!(seen.contains("event: session_created"));
    assert!(!seen.contains("bob"), "only the caller's events: {seen}");

    delete(
        &server,
        &bearer(&laptop),
        &format!("/api/v1/me/sessions/{}", sid(&phone)),
    )
    .await;
    read_until(&mut res, &mut seen, "event: session_revoked").await;

    // Revoking the stream's own session ends it.
    let (status, _) = post(
        &server,
        &bearer(&phone),
        "/api/v1/me/sessions/revoke-others",
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "the revoked phone can no longer act");
    let staff = server.add_user("staff@example.com", Role::Support).await;
    let staff_token = bearer(&desktop(&server, &staff.email, "helpdesk").await);
    post(
        &server,
        &staff_token,
        &format!("/api/v1/admin/sessions/{}/revoke", sid(&laptop)),
        json!({ "reason": "test" }),
    )
    .await;
    read_until(
        &mut res,
        &mut seen,
        &format!("\"session_id\":\"{}\"", sid(&laptop)),
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while res.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends with its session");

    // Without the stream header, the same endpoint lists past events.
    let other = desktop(&server, "alice@example.com", "tablet").await;
    let (status, page) = get(&server, &bearer(&other), "/api/v1/me/events?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let cursor = page["next_before"].as_str().unwrap();
    let (_, next) = get(
        &server,
        &bearer(&other),
        &format!("/api/v1/me/events?limit=2&before={cursor}"),
    )
    .await;
    assert_ne!(next["events"][0]["id"], page["events"][0]["id"]);
    assert_eq!(
        get(
            &server,
            &bearer(&other),
            "/api/v1/me/events?before=nonsense"
        )
        .await
        .0,
        400
    );
}

async fn the_openapi_document_describes_every_api_route(backend: Backend) {
    let server = TestServer::start(backend).await;
    let doc: Value = server.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("get", "/api/v1/me"),
        ("get", "/api/v1/me/sessions"),
        ("delete", "/api/v1/me/sessions/{id}"),
        ("post", "/api/v1/me/sessions/revoke-others"),
        ("get", "/api/v1/me/sessions/{id}/family"),
        ("post", "/api/v1/me/sessions/{id}/acknowledge"),
        ("get", "/api/v1/me/events"),
        ("get", "/api/v1/admin/users"),
        ("get", "/api/v1/admin/users/{id}/sessions"),
        ("get", "/api/v1/admin/sessions/{id}/family"),
        ("get", "/api/v1/admin/events"),
        ("post", "/api/v1/admin/sessions/{id}/revoke"),
        ("post", "/api/v1/admin/users/{id}/revoke-all"),
        ("get", "/api/v1/admin/audit"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}");
        assert!(op["responses"]["200"].is_object(), "{method} {path}");
        // And the route is real: without a token it answers 401, not 404.
        let url = server.url(&path.replace("{id}", "x"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = server.http.request(method, url).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    for schema in [
        "SessionView",
        "Family",
        "SecurityEvent",
        "AuditRecord",
        "ApiErrorBody",
        "ReasonBody",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let discovery: Value = server.get_json("/.well-known/openid-configuration").await;
    assert!(discovery["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("account")));
}

both_backends!(
    sessions_are_listed_by_device_with_the_current_one_marked,
    the_authorization_matrix_holds,
    a_third_party_app_never_reaches_the_support_api,
    control_characters_are_refused_where_input_enters,
    operators_disable_accounts_and_remove_clients_for_good,
    revocation_reaches_refresh_introspection_and_the_api_at_once,
    a_replayed_token_shows_in_the_family_chain,
    signals_are_raised_with_evidence_and_acknowledged,
    high_severity_signals_can_revoke_at_once,
    a_new_device_is_noted_but_not_alarming,
    support_staff_find_inspect_and_revoke_with_a_reason,
    the_audit_log_is_append_only_and_tampering_is_caught,
    security_events_stream_live,
    every_revocation_ends_the_sessions_stream,
    a_sign_in_flood_leaves_the_stream_current_and_the_audit_log_short,
    throttled_sign_ins_are_counted_not_recorded_one_by_one,
    the_openapi_document_describes_every_api_route,
);
