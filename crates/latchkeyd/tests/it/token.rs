//! The token endpoint's code grant, the JWTs it mints, userinfo, revocation and introspection,
//! and bad input on every endpoint.

use std::time::Duration;

use latchkeyd::store::users::Role;
use serde_json::Value;

use crate::both_backends;
use crate::common::*;

async fn the_code_grant_issues_signed_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.add_user("erin@example.com", Role::User).await;
    let tokens = sign_in(&server, "erin@example.com").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "openid profile email offline_access");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(
        refresh.starts_with("lkrt_") && refresh.len() >= 5 + 43,
        "256 random bits"
    );

    let (header, claims) = verify(
        &server,
        tokens["access_token"].as_str().unwrap(),
        &server.base,
    )
    .await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], user.id);
    assert_eq!(claims["client_id"], "latchkey-desktop");
    assert_eq!(claims["scope"], "openid profile email offline_access");
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(claims["jti"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    let (_, id) = verify(
        &server,
        tokens["id_token"].as_str().unwrap(),
        "latchkey-desktop",
    )
    .await;
    assert_eq!(id["sub"], user.id);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["email"], "erin@example.com");
    assert_eq!(id["sid"], claims["sid"]);

    let info: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], user.id);
    assert_eq!(info["email"], "erin@example.com");
    assert_eq!(info["name"], "erin");
}

async fn es256_keys_sign_when_configured(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.tokens.signing_alg = latchkeyd::config::SigningAlg::Es256
    })
    .await;
    server.add_user("es@example.com", Role::User).await;
    let tokens = sign_in(&server, "es@example.com").await;
    let (header, _) = verify(
        &server,
        tokens["access_token"].as_str().unwrap(),
        &server.base,
    )
    .await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

async fn codes_are_single_use_and_a_second_redemption_revokes(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("frank@example.com", Role::User).await;
    let signin = SignIn::new();
    let cb = callback(&server, &signin, "frank@example.com").await;
    let code = query_param(&cb, "code").unwrap();
    let (status, first) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 200);
    let (status, second) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 400);
    assert_eq!(second["error"], "invalid_grant");
    // RFC 6749 §4.1.2: what the first redemption issued is revoked.
    let (status, body) = server
        .refresh(first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo_status(&server, first["access_token"].as_str().unwrap()).await,
        401
    );
}

async fn code_exchange_checks_verifier_client_and_redirect(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("gina@example.com", Role::User).await;
    // Wrong verifier: refused, and the code is spent (no guessing the verifier).
    let signin = SignIn::new();
    let code = query_param(
        &callback(&server, &signin, "gina@example.com").await,
        "code",
    )
    .unwrap();
    let (status, body) = exchange(&server, &code, &Pkce::new().verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 400);

    // Another redirect_uri than the request's.
    let signin = SignIn::new();
    let code = query_param(
        &callback(&server, &signin, "gina@example.com").await,
        "code",
    )
    .unwrap();
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "latchkey-desktop"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:1/callback"),
                ("code_verifier", &signin.pkce.verifier),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // An expired code.
    let signin = SignIn::new();
    let code = query_param(
        &callback(&server, &signin, "gina@example.com").await,
        "code",
    )
    .unwrap();
    server.clock.advance(Duration::from_secs(61));
    let (status, body) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

async fn an_expired_access_token_gets_401_and_nothing_else(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("hank@example.com", Role::User).await;
    let tokens = sign_in(&server, "hank@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    server.clock.advance(Duration::from_secs(301));
    let res = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(body.get("access_token").is_none());
    // Nothing turns it into a new one: not as a refresh token, not as a code.
    let (status, body) = server.refresh(access).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = exchange(&server, access, &Pkce::new().verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Missing token: 401 with a bare challenge.
    let res = server
        .http
        .get(server.url("/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"latchkey\", DPoP algs=\"ES256 EdDSA\""
    );
}

async fn revocation_ends_the_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ivy@example.com", Role::User).await;
    let tokens = sign_in(&server, "ivy@example.com").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&server, access).await, 200);

    assert_eq!(
        server
            .post_form(
                "/revoke",
                &[
                    ("client_id", "latchkey-desktop"),
                    ("token", refresh),
                    ("token_type_hint", "refresh_token"),
                ]
            )
            .await
            .0,
        200
    );
    let (status, _) = server.refresh(refresh).await;
    assert_eq!(status, 400);
    assert_eq!(userinfo_status(&server, access).await, 401);
    let res = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Unknown tokens are answered 200 too (RFC 7009 §2.2).
    assert_eq!(
        server
            .post_form(
                "/revoke",
                &[("client_id", "latchkey-desktop"), ("token", "lkrt_nothing")]
            )
            .await
            .0,
        200
    );

    // Revoking an access token alone leaves the session alive.
    let tokens = sign_in(&server, "ivy@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        server
            .post_form(
                "/revoke",
                &[("client_id", "latchkey-desktop"), ("token", access)]
            )
            .await
            .0,
        200
    );
    assert_eq!(userinfo_status(&server, access).await, 401);
    let (status, _) = server
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
}

async fn introspection_is_for_confidential_clients(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("jon@example.com", Role::User).await;
    let creds = resource_server(&server).await;
    let desktop = sign_in(&server, "jon@example.com").await;
    let tokens = sign_in_with(
        &server,
        "jon@example.com",
        &creds.0,
        Some(&creds.1),
        "openid profile email offline_access",
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = server
        .post_form(
            "/introspect",
            &[("client_id", "latchkey-desktop"), ("token", access)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let res = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(&creds.0, Some("lkcs_wrong"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    // client_secret_post works as well as Basic.
    let (status, body) = server
        .post_form(
            "/introspect",
            &[
                ("client_id", &creds.0),
                ("client_secret", &creds.1),
                ("token", access),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "api-gateway");
    assert_eq!(body["scope"], "openid profile email offline_access");
    assert_eq!(body["aud"], server.base);
    assert!(body["sid"].is_string() && body["jti"].is_string());
    assert_eq!(
        introspect(&server, &creds, refresh).await["token_type"],
        "refresh_token"
    );
    assert_eq!(
        introspect(&server, &creds, "garbage").await,
        serde_json::json!({"active": false})
    );
    // A client learns nothing about another client's tokens, live as they are.
    for other in [&desktop["access_token"], &desktop["refresh_token"]] {
        assert_eq!(
            introspect(&server, &creds, other.as_str().unwrap()).await,
            serde_json::json!({"active": false})
        );
    }
    assert_eq!(
        userinfo_status(&server, desktop["access_token"].as_str().unwrap()).await,
        200
    );
    // Its own revoked session reads inactive at once.
    let res = server
        .http
        .post(server.url("/revoke"))
        .basic_auth(&creds.0, Some(&creds.1))
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&server, &creds, access).await["active"], false);
    assert_eq!(introspect(&server, &creds, refresh).await["active"], false);
}

async fn bad_input_gets_standard_errors_never_500(backend: Backend) {
    let server = TestServer::start(backend).await;
    let post = |path: &'static str, body: String, ctype: &'static str| {
        let req = server
            .http
            .post(server.url(path))
            .header("content-type", ctype)
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        ("/token", "".into(), form, 400, "invalid_request"),
        (
            "/token",
            "grant_type=password&username=a&password=b&client_id=latchkey-desktop".into(),
            form,
            400,
            "unsupported_grant_type",
        ),
        (
            "/token",
            "grant_type=refresh_token&grant_type=refresh_token".into(),
            form,
            400,
            "invalid_request",
        ),
        (
            "/token",
            "{\"grant_type\":\"refresh_token\"}".into(),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            "/token",
            "grant_type=refresh_token&client_id=latchkey-desktop".into(),
            form,
            400,
            "invalid_request",
        ),
        (
            "/token",
            "grant_type=refresh_token&client_id=nope&refresh_token=x".into(),
            form,
            401,
            "invalid_client",
        ),
        (
            "/token",
            "grant_type=refresh_token&client_id=latchkey-desktop&refresh_token=%FF%FE".into(),
            form,
            400,
            "invalid_grant",
        ),
        (
            "/token",
            format!(
                "grant_type=refresh_token&client_id=latchkey-desktop&refresh_token={}",
                "a".repeat(100_000)
            ),
            form,
            400,
            "invalid_request",
        ),
        (
            "/token",
            "grant_type=authorization_code&client_id=latchkey-desktop&code=x&code_verifier=short"
                .into(),
            form,
            400,
            "invalid_request",
        ),
        (
            "/revoke",
            "client_id=latchkey-desktop".into(),
            form,
            400,
            "invalid_request",
        ),
        (
            "/token",
            "grant_type=refresh_token&client_id=latchkey%00desktop&refresh_token=x".into(),
            form,
            400,
            "invalid_request",
        ),
        (
            "/introspect",
            "token=x".into(),
            form,
            400,
            "invalid_request",
        ),
    ];
    for (path, body, ctype, status, error) in cases {
        let shown = body.chars().take(60).collect::<String>();
        let (got, json) = post(path, body, ctype).await;
        assert_eq!(got, status, "{path} {shown}: {json}");
        assert_eq!(json["error"], error, "{path} {shown}");
        assert!(json["error_description"].is_string());
    }
    let res = server
        .http
        .get(server.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "not_found");
    let res = server.http.get(server.url("/token")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    let nul = SignIn::new().set("state", Some("a\0b"));
    let res = server
        .http
        .get(nul.authorize_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "NUL in a parameter is refused with a page"
    );
    assert!(res.headers().get("location").is_none());
    let res = server
        .http
        .post(server.url("/authorize"))
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.text().await.unwrap().contains("<html"),
        "the browser gets a page"
    );
}

/// OpenID Connect Core §11: a refresh token only for `offline_access`; without it the sign-in
/// lasts as long as its access token.
async fn a_refresh_token_only_with_offline_access(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("oli@example.com", Role::User).await;
    let signin = SignIn::new().set("scope", Some("openid email"));
    let cb = callback(&server, &signin, "oli@example.com").await;
    let code = query_param(&cb, "code").unwrap();
    let (status, tokens) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid email");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("refresh_token_expires_in").is_none());
    assert!(tokens["id_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&server, access).await, 200);
    let sid = jsonwebtoken::dangerous::insecure_decode::<Value>(access)
        .unwrap()
        .claims["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let session =
        latchkeyd::store::sessions::find(&server.db, &sid, 1_000_000_000, server.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        session.expires_at.millis() - session.signed_in_at.millis(),
        300_000,
        "the session ends with its access token"
    );
}

/// Failed requests at the token endpoint are limited per address before any database work;
/// a client refreshing with good tokens is never slowed down.
async fn failed_token_requests_are_cut_off_per_address(backend: Backend) {
    let server = TestServer::with(backend, |s| s.trust_forwarded_for = true).await;
    server.add_user("pat@example.com", Role::User).await;
    let tokens = sign_in(&server, "pat@example.com").await;
    let refresh = |token: String, from: &'static str| {
        let req = server
            .http
            .post(server.url("/token"))
            .header("x-forwarded-for", from)
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "latchkey-desktop"),
                ("refresh_token", token.as_str()),
            ]);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let retry = res.headers().get("retry-after").cloned();
            (status, retry, res.json::<Value>().await.unwrap())
        }
    };
    // Good refreshes, far more than the failure burst, on a frozen clock: all answered.
    let mut current = tokens["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..60 {
        let (status, _, body) = refresh(current, "198.51.100.4").await;
        assert_eq!(status, 200, "{body}");
        current = body["refresh_token"].as_str().unwrap().to_string();
    }
    // Guesses: the burst is answered (and costs a lookup each), the rest refused up front.
    let mut refused = 0;
    for i in 0..100 {
        let (status, retry, body) = refresh(format!("lkrt_{i}_guess"), "203.0.113.50").await;
        match status {
            400 => assert_eq!(body["error"], "invalid_grant"),
            429 => {
                refused += 1;
                assert_eq!(body["error"], "temporarily_unavailable");
                assert_eq!(retry.unwrap(), "1");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(
        refused, 70,
        "30 failures at once, then none until the limit recovers"
    );
    // Another address is not affected; the limited one recovers with time.
    let (status, _, body) = refresh(current, "198.51.100.4").await;
    assert_eq!(status, 200, "{body}");
    let current = body["refresh_token"].as_str().unwrap().to_string();
    let (status, ..) = refresh("lkrt_1_guess".into(), "203.0.113.50").await;
    assert_eq!(status, 429);
    server.clock.advance(std::time::Duration::from_secs(2));
    let (status, ..) = refresh(current, "203.0.113.50").await;
    assert_eq!(status, 200, "the address may refresh again");
}

async fn operations_endpoints_answer(backend: Backend) {
    let server = TestServer::with(backend, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    server.add_user("kim@example.com", Role::User).await;
    let tokens = sign_in(&server, "kim@example.com").await;
    server
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    let health: Value = server.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    // Metrics are not for whoever reaches the public port: only on their own address.
    let res = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let metrics = server
        .http
        .get(server.metrics.as_deref().expect("metrics_listen was set"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("latchkey_token_grants_total{grant_type=\"refresh_token\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "latchkey_token_grants_total{grant_type=\"authorization_code\",outcome=\"ok\"} 1"
    ));
    assert!(metrics.contains("latchkey_signins_total{outcome=\"succeeded\"} 1"));
}

async fn rotated_signing_keys_stay_published_until_their_tokens_expire(backend: Backend) {
    let server = TestServer::with(backend, |s| s.upkeep_interval_secs = 1).await;
    server.add_user("lee@example.com", Role::User).await;
    let before = sign_in(&server, "lee@example.com").await;
    let old_kid = jsonwebtoken::decode_header(before["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();

    let master =
        latchkeyd::crypto::MasterKey::load_or_create(&server.dir.path().join("master.key"))
            .unwrap();
    let new = latchkeyd::keys::rotate(
        &server.db,
        &master,
        latchkeyd::config::SigningAlg::EdDsa,
        server.clock.now_ms(),
        90_000,
        latchkeyd::store::audit::Actor::Operator("test"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await; // the server's upkeep reloads keys

    // Published at once, but the old key signs until the activation delay has passed.
    let jwks: Value = server.get_json("/jwks.json").await;
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == new.kid.as_str()));
    let during = sign_in(&server, "lee@example.com").await;
    let kid = jsonwebtoken::decode_header(during["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(
        kid, old_kid,
        "the old key signs during the activation delay"
    );
    server.clock.advance(Duration::from_secs(91));
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let after = sign_in(&server, "lee@example.com").await;
    let kid = jsonwebtoken::decode_header(after["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, new.kid, "new tokens are signed with the new key");
    let jwks: Value = server.get_json("/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new.kid.as_str()),
        "{kids:?}"
    );
    // Tokens signed by the old key still verify while they live.
    let res = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(before["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    server.clock.advance(Duration::from_secs(301 + 300));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let jwks: Value = server.get_json("/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        vec![new.kid.as_str()],
        "the old key is gone once its tokens have expired"
    );
}

/// Only the client a code was issued to can prove its replay; anyone else holding an old code
/// gets invalid_grant and ends nothing.
async fn a_used_code_from_another_client_revokes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("kay@example.com", Role::User).await;
    server.add_other_app().await;
    let signin = SignIn::new();
    let code = query_param(&callback(&server, &signin, "kay@example.com").await, "code").unwrap();
    let (_, tokens) = exchange(&server, &code, &signin.pkce.verifier).await;
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "other-app"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &signin.pkce.verifier),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        server
            .refresh(tokens["refresh_token"].as_str().unwrap())
            .await
            .0,
        200
    );
}

both_backends!(
    a_used_code_from_another_client_revokes_nothing,
    the_code_grant_issues_signed_tokens,
    es256_keys_sign_when_configured,
    codes_are_single_use_and_a_second_redemption_revokes,
    code_exchange_checks_verifier_client_and_redirect,
    an_expired_access_token_gets_401_and_nothing_else,
    revocation_ends_the_session,
    introspection_is_for_confidential_clients,
    bad_input_gets_standard_errors_never_500,
    a_refresh_token_only_with_offline_access,
    failed_token_requests_are_cut_off_per_address,
    operations_endpoints_answer,
    rotated_signing_keys_stay_published_until_their_tokens_expire,
);
