//! Sign-in with a code (RFC 8628): a device with no browser asks for a code, a person enters
//! it at /device in a browser elsewhere, signs in and approves; the device's polls get its
//! session, with the device's own address, bound to its key.

use std::time::Duration;

use latchkey_client::dpop::DeviceKey;
use latchkeyd::store::users::Role;
use serde_json::Value;

use crate::api::get;
use crate::both_backends;
use crate::common::*;
use crate::dpop::proof;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The device's address (it polls from a server room), and the approving browser's.
const DEVICE_IP: &str = "198.51.100.7";
const BROWSER_IP: &str = "203.0.113.9";

/// POST /device_authorization from the device's address.
async fn ask(server: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let res = server
        .http
        .post(server.url("/device_authorization"))
        .header("x-forwarded-for", DEVICE_IP)
        .header("user-agent", "latchkey/0.1.0 (Linux)")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// A device's poll at the token endpoint, with a DPoP proof if it has a key.
async fn poll(server: &TestServer, device_code: &str, key: Option<&DeviceKey>) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url("/token"))
        .header("x-forwarded-for", DEVICE_IP)
        .header("user-agent", "latchkey/0.1.0 (Linux)")
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "latchkey-desktop"),
            ("device_code", device_code),
        ]);
    if let Some(key) = key {
        req = req.header("DPoP", key.sign(&proof(server, "POST", "/token")));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// A browser elsewhere, on another network.
fn browser_elsewhere() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", BROWSER_IP.parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Opens the approval form for `typed` as a person would: the code page, then the code.
async fn enter_code(server: &TestServer, browser: &reqwest::Client, typed: &str) -> (u16, String) {
    let page = browser.get(server.url("/device")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Enter the code that your device shows"));
    let res = browser
        .post(server.url("/device"))
        .form(&[("action", "code"), ("user_code", typed)])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn decide(
    server: &TestServer,
    browser: &reqwest::Client,
    form_page: &str,
    action: &str,
    password: &str,
) -> (u16, String) {
    let request = hidden(form_page, "request").expect("the approval form");
    let csrf = hidden(form_page, "csrf_token").unwrap();
    let res = browser
        .post(server.url("/device"))
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("username", "ann@example.com"),
            ("password", password),
            ("action", action),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn a_device_signs_in_with_a_code_approved_elsewhere(backend: Backend) {
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    server.add_user("ann@example.com", Role::User).await;
    let meta: Value = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["device_authorization_endpoint"],
        server.url("/device_authorization")
    );
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&GRANT.into()));

    let key = DeviceKey::generate();
    let (status, asked) = ask(
        &server,
        &[
            ("client_id", "latchkey-desktop"),
            ("scope", "openid offline_access account"),
            ("device_name", "build-server"),
            ("device_platform", "linux"),
            ("dpop_jkt", key.thumbprint()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    let user_code = asked["user_code"].as_str().unwrap();
    let device_code = asked["device_code"].as_str().unwrap();
    assert_eq!(asked["verification_uri"], format!("{}/device", server.base));
    assert_eq!(
        asked["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", server.base)
    );
    assert_eq!(
        (asked["expires_in"].as_u64(), asked["interval"].as_u64()),
        (Some(600), Some(5))
    );

    // Nobody has approved yet; a device polling too soon is told to slow down.
    let (status, body) = poll(&server, device_code, Some(&key)).await;
    assert_error(status, &body, 400, "authorization_pending");
    let (status, body) = poll(&server, device_code, Some(&key)).await;
    assert_error(status, &body, 400, "slow_down");
    server.clock.advance(Duration::from_secs(10));
    let (status, body) = poll(&server, device_code, Some(&key)).await;
    assert_error(status, &body, 400, "authorization_pending");

    // A person types the code as they read it: lower case, no dash. The page names the app
    // and the device, and warns.
    let browser = browser_elsewhere();
    let typed = user_code.replace('-', "").to_lowercase();
    let (status, form) = enter_code(&server, &browser, &typed).await;
    assert_eq!(status, 200, "{form}");
    for shown in [
        "Latchkey Desktop",
        "build-server",
        "(linux)",
        DEVICE_IP,
        user_code,
        "Approving gives that device access to your account",
    ] {
        assert!(form.contains(shown), "the approval page shows {shown:?}");
    }
    let (status, done) = decide(&server, &browser, &form, "approve", PASSWORD).await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Your device is signed in"), "{done}");

    // The device's next poll (after the interval, now 10 s) gets its session, bound to its key.
    server.clock.advance(Duration::from_secs(10));
    let (status, tokens) = poll(&server, device_code, Some(&key)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("lkrt_"));
    assert!(tokens["id_token"].is_string());
    let (status, again) = poll(&server, device_code, Some(&key)).await;
    assert_error(status, &again, 400, "invalid_grant");

    // The session is the device's: its name, its address (not the browser's), its key; the
    // approval from another network is noted with it, not alarming.
    let access = tokens["access_token"].as_str().unwrap();
    let res = server
        .http
        .get(server.url("/api/v1/me/sessions"))
        .header("authorization", format!("DPoP {access}"))
        .header("DPoP", {
            let mut p = proof(&server, "GET", "/api/v1/me/sessions");
            p.ath = Some(crate::dpop::ath(access));
            key.sign(&p)
        })
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let session = &list["devices"][0]["sessions"][0];
    assert_eq!(session["device"]["name"], "build-server");
    assert_eq!(session["first_seen"]["ip"], DEVICE_IP);
    assert_eq!(session["key_thumbprint"], key.thumbprint());
    assert_eq!(
        session["signals"][0]["kind"], "approved_elsewhere",
        "{session}"
    );
    assert_eq!(session["suspicious"], false);
    assert!(session["signals"][0]["summary"]
        .as_str()
        .unwrap()
        .contains("approved from another network (203.0.113.0/24)"));
}

async fn a_denied_an_expired_and_a_wrong_code(backend: Backend) {
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    server.add_user("ann@example.com", Role::User).await;
    let new_code = || async {
        let (status, asked) = ask(
            &server,
            &[("client_id", "latchkey-desktop"), ("device_name", "tv")],
        )
        .await;
        assert_eq!(status, 200, "{asked}");
        asked
    };

    // Denied in the browser: the device is told access_denied, once.
    let asked = new_code().await;
    let browser = browser_elsewhere();
    let (_, form) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    let (status, done) = decide(&server, &browser, &form, "deny", "").await;
    assert_eq!(status, 200);
    assert!(done.contains("Sign-in denied"), "{done}");
    let device_code = asked["device_code"].as_str().unwrap();
    let (status, body) = poll(&server, device_code, None).await;
    assert_error(status, &body, 400, "access_denied");
    let (status, body) = poll(&server, device_code, None).await;
    assert_error(status, &body, 400, "invalid_grant");

    // Expired: the device is told so, and the code no longer opens a form.
    let asked = new_code().await;
    server.clock.advance(Duration::from_secs(601));
    let (status, body) = poll(&server, asked["device_code"].as_str().unwrap(), None).await;
    assert_error(status, &body, 400, "expired_token");
    let (status, page) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert!(page.contains("That code is not valid"), "{page}");

    // Mistyped codes are explained, never a server error.
    for typed in ["", "BCDF", "BCDF-GHJ0", "<script>"] {
        let (status, page) = enter_code(&server, &browser, typed).await;
        assert_eq!(status, 400, "{typed:?}");
        assert!(page.contains("A code is 8 letters"), "{typed:?}: {page}");
        assert!(!page.contains("<script>"));
    }

    // Wrong passwords on one code: explained, then the code is refused for good.
    let asked = new_code().await;
    let (_, form) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    for _ in 0..4 {
        let (status, page) = decide(&server, &browser, &form, "approve", "wrong").await;
        assert_eq!(status, 401);
        assert!(page.contains("do not match an account"));
    }
    let (status, page) = decide(&server, &browser, &form, "approve", "wrong").await;
    assert_eq!(status, 401);
    assert!(
        page.contains("Too many wrong passwords for this code"),
        "{page}"
    );
    let (status, page) = decide(&server, &browser, &form, "approve", PASSWORD).await;
    assert_eq!(status, 400, "the right password comes too late: {page}");
    server.clock.advance(Duration::from_secs(10));
    let (status, body) = poll(&server, asked["device_code"].as_str().unwrap(), None).await;
    assert_error(status, &body, 400, "access_denied");

    // A form is accepted only from the browser that entered the code.
    let asked = new_code().await;
    let (_, form) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    let (status, _) = decide(&server, &browser_elsewhere(), &form, "approve", PASSWORD).await;
    assert_eq!(status, 403);

    // Unknown device codes, and a poll without one.
    let (status, body) = poll(&server, "lkdc_nothing", None).await;
    assert_error(status, &body, 400, "invalid_grant");
    let (status, body) = server
        .post_form(
            "/token",
            &[("grant_type", GRANT), ("client_id", "latchkey-desktop")],
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
}

async fn only_clients_registered_for_it_get_a_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    // A client registered only for the browser sign-in.
    server.add_other_app().await;
    let (status, body) = server
        .post_form("/device_authorization", &[("client_id", "other-app")])
        .await;
    assert_error(status, &body, 400, "unauthorized_client");
    let (status, body) = server
        .post_form("/device_authorization", &[("client_id", "nobody")])
        .await;
    assert_error(status, &body, 401, "invalid_client");
    for (scope, why) in [
        ("openid nonsense", "unknown scope"),
        ("ssf", "service account"),
    ] {
        let (status, body) = server
            .post_form(
                "/device_authorization",
                &[("client_id", "latchkey-desktop"), ("scope", scope)],
            )
            .await;
        assert_error(status, &body, 400, "invalid_scope");
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    let (status, body) = server
        .post_form(
            "/device_authorization",
            &[("client_id", "latchkey-desktop"), ("dpop_jkt", "short")],
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
}

async fn a_code_bound_to_a_key_is_redeemed_only_with_it(backend: Backend) {
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let (_, asked) = ask(
        &server,
        &[
            ("client_id", "latchkey-desktop"),
            ("dpop_jkt", key.thumbprint()),
        ],
    )
    .await;
    let browser = browser_elsewhere();
    let (_, form) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    let (status, _) = decide(&server, &browser, &form, "approve", PASSWORD).await;
    assert_eq!(status, 200);
    let thief = DeviceKey::generate();
    let (status, body) = poll(
        &server,
        asked["device_code"].as_str().unwrap(),
        Some(&thief),
    )
    .await;
    assert_error(status, &body, 400, "invalid_grant");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("dpop_jkt"));
    let (status, body) = poll(&server, asked["device_code"].as_str().unwrap(), Some(&key)).await;
    assert_error(status, &body, 400, "invalid_grant");
}

async fn a_flood_of_requests_for_codes_is_cut_off(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.limits.authorize.per_minute = 1;
        s.limits.authorize.burst = 2;
    })
    .await;
    let ask = || {
        server.post_form(
            "/device_authorization",
            &[("client_id", "latchkey-desktop")],
        )
    };
    for _ in 0..2 {
        let (status, body) = ask().await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = ask().await;
    assert_error(status, &body, 429, "temporarily_unavailable");
}

async fn staff_powers_are_never_granted_with_a_code(backend: Backend) {
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    server.add_user("ann@example.com", Role::Support).await;
    let (status, asked) = ask(
        &server,
        &[
            ("client_id", "latchkey-desktop"),
            ("scope", "openid account support"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    let browser = browser_elsewhere();
    let (_, form) = enter_code(&server, &browser, asked["user_code"].as_str().unwrap()).await;
    assert!(
        !form.contains("Staff powers"),
        "the page offers no staff powers"
    );
    let (status, _) = decide(&server, &browser, &form, "approve", PASSWORD).await;
    assert_eq!(status, 200);
    server.clock.advance(Duration::from_secs(10));
    let (status, tokens) = poll(&server, asked["device_code"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        tokens["scope"], "openid account",
        "a staff member signed in without support"
    );
    let (_, me) = get(
        &server,
        tokens["access_token"].as_str().unwrap(),
        "/api/v1/me",
    )
    .await;
    assert_eq!(me["role"], "support", "{me}");
    assert_eq!(me["staff"], false, "no support mode for this session: {me}");
    let (status, body) = ask(
        &server,
        &[("client_id", "latchkey-desktop"), ("scope", "support")],
    )
    .await;
    assert_error(status, &body, 400, "invalid_scope");
}

async fn polling_too_fast_counts_against_the_address(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.trust_forwarded_for = true;
        s.limits.token_failures.per_minute = 1;
        s.limits.token_failures.burst = 3;
    })
    .await;
    let (_, asked) = ask(&server, &[("client_id", "latchkey-desktop")]).await;
    let code = asked["device_code"].as_str().unwrap();
    let mut answers = Vec::new();
    for _ in 0..8 {
        let (_, body) = poll(&server, code, None).await;
        answers.push(body["error"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(answers[0], "authorization_pending");
    assert_eq!(answers[1], "slow_down");
    assert!(
        answers.ends_with(&["temporarily_unavailable".to_string()]),
        "a device that keeps polling too fast is cut off: {answers:?}"
    );
}

both_backends!(
    staff_powers_are_never_granted_with_a_code,
    polling_too_fast_counts_against_the_address,
    a_flood_of_requests_for_codes_is_cut_off,
    a_device_signs_in_with_a_code_approved_elsewhere,
    a_denied_an_expired_and_a_wrong_code,
    only_clients_registered_for_it_get_a_code,
    a_code_bound_to_a_key_is_redeemed_only_with_it,
);
