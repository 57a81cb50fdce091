//! Service accounts: confidential clients that sign in as themselves with `client_credentials`
//! (RFC 6749 §4.4) for the service scopes, and nothing else.

use serde_json::Value;

use crate::both_backends;
use crate::common::*;

/// `POST /token` with `grant_type=client_credentials`, the secret as HTTP Basic.
async fn client_credentials(
    server: &TestServer,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let res = server
        .http
        .post(server.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap(), headers)
}

async fn a_service_account_gets_a_token_of_its_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let secret = server
        .add_service("receiver", &["ssf", "global_token_revocation"])
        .await;

    let (status, body, headers) = client_credentials(&server, "receiver", &secret, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"], "ssf global_token_revocation",
        "no scope asked: every service scope it is registered for"
    );
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");

    // RFC 9068: any JWT library verifies it against the JWKS.
    let token = body["access_token"].as_str().unwrap();
    let (header, claims) = verify(&server, token, &server.base).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], "receiver");
    assert_eq!(claims["client_id"], "receiver");
    assert_eq!(claims["iss"], server.base);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["iat"].as_i64().is_some());
    assert!(claims.get("sid").is_none(), "no user session: {claims}");

    // client_secret_post, and a narrower scope.
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "receiver"),
                ("client_secret", &secret),
                ("scope", "ssf"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "ssf");

    // Its own introspection sees it as a service token: active, no session.
    let info = introspect(&server, &("receiver".into(), secret.clone()), token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "receiver");
    assert!(info.get("sid").is_none(), "{info}");

    // A service token is nobody's: userinfo and the account API refuse it.
    assert_eq!(userinfo_status(&server, token).await, 403);
    let me = server
        .http
        .get(server.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 403);
}

async fn client_credentials_is_only_for_what_was_registered(backend: Backend) {
    let server = TestServer::start(backend).await;
    let secret = server.add_service("receiver", &["ssf"]).await;

    let (status, body, headers) = client_credentials(&server, "receiver", "wrong", None).await;
    assert_error(status, &body, 401, "invalid_client");
    assert!(headers.contains_key("www-authenticate"));

    let (status, body, _) = client_credentials(
        &server,
        "receiver",
        &secret,
        Some("global_token_revocation"),
    )
    .await;
    assert_error(status, &body, 400, "invalid_scope");
    let (status, body, _) = client_credentials(&server, "receiver", &secret, Some("openid")).await;
    assert_error(status, &body, 400, "invalid_scope");

    // A client that signs users in is not a service account, secret or not.
    let (gateway, gateway_secret) = resource_server(&server).await;
    let (status, body, _) = client_credentials(&server, &gateway, &gateway_secret, None).await;
    assert_error(status, &body, 400, "unauthorized_client");
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "latchkey-desktop"),
            ],
        )
        .await;
    assert_error(status, &body, 400, "unauthorized_client");

    // And a service account signs nobody in: no code, no refresh.
    let (status, body) = server
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "receiver"),
                ("client_secret", &secret),
                ("refresh_token", "lkrt_x"),
            ],
        )
        .await;
    assert_error(status, &body, 400, "unauthorized_client");
    let signin = SignIn::new().set("client_id", Some("receiver"));
    let page = browser()
        .get(signin.authorize_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("not registered to sign people in"));

    // Nor does a user's sign-in get a service scope.
    let signin = SignIn::new().set("scope", Some("openid ssf"));
    let res = browser()
        .get(signin.authorize_url(&server))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_scope")
    );
    let why = query_param(&location, "error_description").unwrap();
    assert!(why.contains("service account"), "{why}");
}

async fn a_resource_server_registered_for_introspection_sees_every_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .add_user("jon@example.com", latchkeyd::store::users::Role::User)
        .await;
    let gateway = (
        "gateway".to_string(),
        server.add_service("gateway", &["introspection"]).await,
    );
    let receiver = (
        "receiver".to_string(),
        server.add_service("receiver", &["ssf"]).await,
    );
    let desktop = sign_in(&server, "jon@example.com").await;
    let access = desktop["access_token"].as_str().unwrap();
    let refresh = desktop["refresh_token"].as_str().unwrap();

    let info = introspect(&server, &gateway, access).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], "latchkey-desktop");
    assert!(info["sid"].is_string(), "{info}");
    assert_eq!(introspect(&server, &gateway, refresh).await["active"], true);
    // Registered for something else: another client's tokens stay hidden.
    assert_eq!(
        introspect(&server, &receiver, access).await,
        serde_json::json!({ "active": false })
    );

    sign_out(&server, &desktop).await;
    assert_eq!(
        introspect(&server, &gateway, access).await,
        serde_json::json!({ "active": false }),
        "its session was revoked"
    );
}

both_backends!(
    a_service_account_gets_a_token_of_its_own,
    client_credentials_is_only_for_what_was_registered,
    a_resource_server_registered_for_introspection_sees_every_token,
);
