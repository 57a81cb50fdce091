//! Discovery, the authorization endpoint and the sign-in form.

use latchkeyd::store::users::Role;
use serde_json::Value;

use crate::both_backends;
use crate::common::*;

async fn discovery_advertises_every_endpoint(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta: Value = server.get_json(path).await;
        assert_eq!(meta["issuer"], server.base);
        assert_eq!(
            meta["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
        for (key, suffix) in [
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("userinfo_endpoint", "/userinfo"),
            ("jwks_uri", "/jwks.json"),
            ("revocation_endpoint", "/revoke"),
            ("introspection_endpoint", "/introspect"),
        ] {
            assert_eq!(meta[key], server.url(suffix), "{key}");
        }
        for scope in ["openid", "profile", "email", "offline_access"] {
            assert!(meta["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&scope.into()));
        }
    }
    let jwks: Value = server.get_json("/jwks.json").await;
    let key = &jwks["keys"][0];
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kty"], "OKP");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(
        key.get("d").is_none(),
        "the JWKS never carries a private key"
    );
}

async fn the_signin_page_names_the_app_and_device(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, page) = open_form(&server, &SignIn::new()).await;
    assert!(page.contains("Latchkey Desktop"), "names the app");
    assert!(
        page.contains("Alice&#39;s laptop") || page.contains("Alice&#x27;s laptop"),
        "names the device, escaped: {page}"
    );
    assert!(page.contains("Linux"));
    assert!(page.contains("name=\"username\"") && page.contains("name=\"password\""));
    assert!(page.contains("See your email address"));
    assert!(page.contains("the app on this computer"));
    assert!(!page.contains("Staff powers"), "none asked for");

    // The page may post only to itself and to the app it returns to, and is never framed; an
    // error page may post nowhere.
    let res = browser()
        .get(SignIn::new().authorize_url(&server))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.ends_with("form-action 'self' http://127.0.0.1:61234"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let res = browser()
        .get(
            SignIn::new()
                .set("client_id", Some("nobody"))
                .authorize_url(&server),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.ends_with("form-action 'none'"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-frame-options"], "DENY");

    // Staff powers, when asked for, are named as such.
    let signin = SignIn::new().set(
        "scope",
        Some("openid profile email offline_access account support"),
    );
    let (_, page) = open_form(&server, &signin).await;
    assert!(page.contains("See and sign out your devices and sessions"));
    assert!(
        page.contains("Staff powers:") && page.contains("sign them out, and read the audit log"),
        "{page}"
    );

    // Device text is the client's word: markup in it is shown as text, never run.
    let signin = SignIn::new().set("device_name", Some("<script>alert(1)</script>"));
    let (_, page) = open_form(&server, &signin).await;
    assert!(!page.contains("<script>alert(1)"));
    assert!(
        page.contains("script&#62;alert(1)") || page.contains("script&gt;alert(1)"),
        "shown as text"
    );
}

async fn signing_in_returns_code_state_and_iss(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("alice@example.com", Role::User).await;
    let signin = SignIn::new();
    let cb = callback(&server, &signin, "Alice@Example.com").await;
    assert!(cb.starts_with(REDIRECT), "{cb}");
    assert_eq!(
        query_param(&cb, "state").as_deref(),
        Some(signin.state.as_str())
    );
    assert_eq!(
        query_param(&cb, "iss").as_deref(),
        Some(server.base.as_str()),
        "RFC 9207"
    );
    assert!(query_param(&cb, "code").unwrap().starts_with("lkac_"));
}

async fn wrong_passwords_are_explained_then_throttled(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("bob@example.com", Role::User).await;
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    let res = submit_form(
        &server,
        &browser,
        &page,
        "bob@example.com",
        "wrong password",
    )
    .await;
    assert_eq!(res.status(), 401);
    let again = res.text().await.unwrap();
    assert!(again.contains("do not match an account"), "clear message");
    assert!(
        again.contains("role=\"alert\""),
        "announced to screen readers"
    );
    assert!(
        again.contains("value=\"bob@example.com\""),
        "keeps the email typed"
    );
    // An unknown account gets the same answer: no account enumeration.
    let res = submit_form(
        &server,
        &browser,
        &page,
        "nobody@example.com",
        "wrong password",
    )
    .await;
    assert_eq!(res.status(), 401);

    for _ in 0..4 {
        let res = submit_form(
            &server,
            &browser,
            &page,
            "bob@example.com",
            "wrong password",
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    // Five failures: even the right password is refused for now, with a clear reason.
    let res = submit_form(&server, &browser, &page, "bob@example.com", PASSWORD).await;
    assert_eq!(res.status(), 429);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("Too many failed sign-in attempts for this account"),
        "{text}"
    );
    assert!(text.contains("15 minutes"), "{text}");

    // The window passes; the right password works again (in a new form: the old one expired).
    server
        .clock
        .advance(std::time::Duration::from_secs(15 * 60 + 1));
    let res = submit_form(&server, &browser, &page, "bob@example.com", PASSWORD).await;
    assert_eq!(res.status(), 400, "the form itself has expired");
    let (browser, page) = open_form(&server, &signin).await;
    let res = submit_form(&server, &browser, &page, "bob@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303);
}

async fn too_many_failures_from_one_address_are_throttled(backend: Backend) {
    let server = TestServer::with(backend, |s| s.signin.max_failures_per_address = 3).await;
    server.add_user("carol@example.com", Role::User).await;
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    for i in 0..3 {
        let res = submit_form(
            &server,
            &browser,
            &page,
            &format!("guess{i}@example.com"),
            "x",
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let res = submit_form(&server, &browser, &page, "carol@example.com", PASSWORD).await;
    assert_eq!(res.status(), 429);
    let text = res.text().await.unwrap();
    assert!(text.contains("your network address"), "{text}");
    assert!(text.contains("try again in a second"), "{text}");

    // A delay, not a lockout: the account holder at the same address gets in once it passes,
    // while each further stranger's guess waits twice as long as the one before.
    server.clock.advance(std::time::Duration::from_secs(1));
    let res = submit_form(&server, &browser, &page, "nobody@example.com", "x").await;
    assert_eq!(res.status(), 401);
    let res = submit_form(&server, &browser, &page, "carol@example.com", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("try again in 2 seconds"));
    server.clock.advance(std::time::Duration::from_secs(2));
    let res = submit_form(&server, &browser, &page, "carol@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303, "not locked out");
}

async fn the_form_is_bound_to_its_browser(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("dave@example.com", Role::User).await;
    let signin = SignIn::new();
    let (_, page) = open_form(&server, &signin).await;
    // Another browser (no cookie) posting the same form: refused, no redirect.
    let stranger = browser();
    let res = submit_form(&server, &stranger, &page, "dave@example.com", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());

    // The right browser with a forged CSRF token: refused too.
    let (browser, page) = open_form(&server, &signin).await;
    let forged = page.replace(&hidden(&page, "csrf_token").unwrap(), "lkcf_forged");
    let res = submit_form(&server, &browser, &forged, "dave@example.com", PASSWORD).await;
    assert_eq!(res.status(), 403);

    // A form is good once: after success, replaying it shows "expired".
    let res = submit_form(&server, &browser, &page, "dave@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let res = submit_form(&server, &browser, &page, "dave@example.com", PASSWORD).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}

async fn cancel_returns_access_denied(backend: Backend) {
    let server = TestServer::start(backend).await;
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    let res = browser
        .post(server.url("/authorize"))
        .form(&[
            ("request", hidden(&page, "request").unwrap().as_str()),
            ("csrf_token", hidden(&page, "csrf_token").unwrap().as_str()),
            ("action", "cancel"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(location, "state").as_deref(),
        Some(signin.state.as_str())
    );
    assert_eq!(
        query_param(location, "iss").as_deref(),
        Some(server.base.as_str())
    );
}

async fn bad_redirect_uris_get_a_page_never_a_redirect(backend: Backend) {
    let server = TestServer::start(backend).await;
    for bad in [
        Some("https://evil.example/callback"),
        Some("http://localhost:61234/callback"),
        Some("http://127.0.0.1:61234/other"),
        Some("http://127.0.0.1:61234/callback#x"),
        Some("not a url"),
        None,
    ] {
        let signin = SignIn::new().set("redirect_uri", bad);
        let res = server
            .http
            .get(signin.authorize_url(&server))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad:?}");
        assert!(
            res.headers().get("location").is_none(),
            "{bad:?} must not redirect"
        );
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("This sign-in link is not valid"));
    }
    let unknown = SignIn::new().set("client_id", Some("nope"));
    let res = server
        .http
        .get(unknown.authorize_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());

    // Loopback IP literals accept any port, IPv4 and IPv6 (RFC 8252 §7.3).
    for good in [
        "http://127.0.0.1:1/callback",
        "http://127.0.0.1:65535/callback",
        "http://[::1]:40000/callback",
    ] {
        let signin = SignIn::new().set("redirect_uri", Some(good));
        let res = server
            .http
            .get(signin.authorize_url(&server))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{good}");
    }
}

async fn pkce_is_required_and_plain_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let cases = [
        (SignIn::new().set("code_challenge", None), "invalid_request"),
        (
            SignIn::new().set("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            SignIn::new().set("code_challenge_method", None),
            "invalid_request",
        ),
        (
            SignIn::new().set("code_challenge", Some("short")),
            "invalid_request",
        ),
        (
            SignIn::new().set("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            SignIn::new().set("scope", Some("openid admin")),
            "invalid_scope",
        ),
        (SignIn::new().set("prompt", Some("none")), "login_required"),
    ];
    for (signin, error) in cases {
        let res = server
            .http
            .get(signin.authorize_url(&server))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{error}");
        let location = res.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(REDIRECT));
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some(error),
            "{location}"
        );
        assert_eq!(
            query_param(location, "state").as_deref(),
            Some(signin.state.as_str())
        );
        assert_eq!(
            query_param(location, "iss").as_deref(),
            Some(server.base.as_str())
        );
        assert!(query_param(location, "error_description").is_some());
    }
    // A repeated parameter cannot be trusted for a redirect: a page.
    let url = format!(
        "{}&client_id=latchkey-desktop",
        SignIn::new().authorize_url(&server)
    );
    let res = server.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

/// Every attempt is recorded before its password is checked, so a burst of parallel guesses
/// cannot slip past the limit.
async fn parallel_guesses_are_throttled_too(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("lou@example.com", Role::User).await;
    let signin = SignIn::new();
    let (browser, page) = open_form(&server, &signin).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let browser = browser.clone();
        let url = server.url("/authorize");
        let fields = [
            ("request".to_string(), hidden(&page, "request").unwrap()),
            (
                "csrf_token".to_string(),
                hidden(&page, "csrf_token").unwrap(),
            ),
            ("username".to_string(), "lou@example.com".to_string()),
            ("password".to_string(), format!("guess-{i}")),
        ];
        tasks.spawn(async move {
            browser
                .post(url)
                .form(&fields)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    let guessed = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        guessed <= 5,
        "at most 5 passwords were checked: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20 - guessed,
        "{statuses:?}"
    );
}

both_backends!(
    parallel_guesses_are_throttled_too,
    discovery_advertises_every_endpoint,
    the_signin_page_names_the_app_and_device,
    signing_in_returns_code_state_and_iss,
    wrong_passwords_are_explained_then_throttled,
    too_many_failures_from_one_address_are_throttled,
    the_form_is_bound_to_its_browser,
    cancel_returns_access_denied,
    bad_redirect_uris_get_a_page_never_a_redirect,
    pkce_is_required_and_plain_refused,
);
