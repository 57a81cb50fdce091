//! DPoP (RFC 9449): bound sessions still rotate, a stolen copy without the key kills its
//! family, and every proof is checked to the letter.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey_client::dpop::{DeviceKey, ProofClaims};
use latchkeyd::store::users::Role;
use latchkeyd::store::{chains, events};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::common::*;
use latchkeyd::store::events::Severity;
use latchkeyd::store::sessions::LinkState;

fn claims_of(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .unwrap()
        .claims
}

fn jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A proof as an honest client makes it, on the server's (manual) clock.
pub(crate) fn proof(server: &TestServer, method: &str, path: &str) -> ProofClaims {
    ProofClaims {
        jti: jti(),
        htm: method.into(),
        htu: format!("{}{path}", server.base),
        iat: server.clock.now_ms() / 1000,
        ath: None,
        nonce: None,
    }
}

pub(crate) fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// POST /token with a proof; status, body and the `DPoP-Nonce` header.
async fn token_request(
    server: &TestServer,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> (u16, Value, Option<String>) {
    let mut req = server.http.post(server.url("/token")).form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.json().await.unwrap_or(Value::Null), nonce)
}

async fn refresh_with(server: &TestServer, token: &str, proof: Option<String>) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "latchkey-desktop"),
        ("refresh_token", token),
    ];
    let (status, body, _) = token_request(server, &form, proof).await;
    (status, body)
}

/// Signs in through the form with `dpop_jkt` and a proof on the code exchange.
pub(crate) async fn bound_sign_in(server: &TestServer, email: &str, key: &DeviceKey) -> Value {
    let signin = SignIn::new()
        .set("dpop_jkt", Some(key.thumbprint()))
        .set("scope", Some("openid offline_access account"));
    let cb = callback(server, &signin, email).await;
    let code = query_param(&cb, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "latchkey-desktop"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", signin.pkce.verifier.as_str()),
    ];
    let p = key.sign(&proof(server, "POST", "/token"));
    let (status, body, _) = token_request(server, &form, Some(p)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn events_of(server: &TestServer, session: &str, kind: &str) -> Vec<events::Event> {
    events::list(
        &server.db,
        &events::Filter {
            session_id: Some(session.into()),
            kind: Some(kind.into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn a_bound_family_rotates_and_a_stolen_copy_kills_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let meta: Value = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA"])
    );

    let key = DeviceKey::generate();
    let tokens = bound_sign_in(&server, "ann@example.com", &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());
    let session = claims["sid"].as_str().unwrap().to_string();

    // Bound, and still rotating: each refresh with a fresh proof by the same key.
    let mut current = tokens["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(30));
        let p = key.sign(&proof(&server, "POST", "/token"));
        let (status, body) = refresh_with(&server, &current, Some(p)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        let next = body["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(next, current, "a bound family rotates on every use");
        current = next;
    }

    // The live refresh token, copied to another machine with its own key: refused, recorded,
    // and the family is dead for everyone.
    let thief = DeviceKey::generate();
    let p = thief.sign(&proof(&server, "POST", "/token"));
    let (status, body) = refresh_with(&server, &current, Some(p)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("another device's key"));
    let found = events_of(&server, &session, "key_mismatch").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::High);
    assert_eq!(found[0].details["bound_jkt"], key.thumbprint());
    assert_eq!(found[0].details["presented_jkt"], thief.thumbprint());
    assert_eq!(found[0].details["session_revoked"], true);
    let p = key.sign(&proof(&server, "POST", "/token"));
    let (status, _) = refresh_with(&server, &current, Some(p)).await;
    assert_eq!(status, 400, "the owner's family is revoked too");
    let chain = chains::chain(&server.db, &session).await.unwrap();
    assert_eq!(chain.last().unwrap().state, LinkState::Revoked);
    assert_eq!(
        chain
            .iter()
            .filter(|l| l.state == LinkState::Active)
            .count(),
        0
    );

    // A bound token presented as a plain bearer refresh (no proof at all) is theft as well.
    let key2 = DeviceKey::generate();
    let tokens = bound_sign_in(&server, "ann@example.com", &key2).await;
    let session2 = claims_of(tokens["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) =
        refresh_with(&server, tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let found = events_of(&server, &session2, "key_mismatch").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].details["presented_jkt"], Value::Null);
}

async fn a_bearer_session_stays_bearer(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let tokens = sign_in(&server, "ann@example.com").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(claims_of(tokens["access_token"].as_str().unwrap())
        .get("cnf")
        .is_none());
    let (status, body) = server
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
}

async fn every_proof_is_checked_to_the_letter(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let tokens = bound_sign_in(&server, "ann@example.com", &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();

    let refused = |claims: ProofClaims| key.sign(&claims);
    let base = || proof(&server, "POST", "/token");
    let cases: Vec<(&str, String)> = vec![
        (
            "another URL",
            refused(ProofClaims {
                htu: format!("{}/revoke", server.base),
                ..base()
            }),
        ),
        (
            "another method",
            refused(ProofClaims {
                htm: "GET".into(),
                ..base()
            }),
        ),
        (
            "an old iat",
            refused(ProofClaims {
                iat: base().iat - 120,
                ..base()
            }),
        ),
        (
            "an iat in the future",
            refused(ProofClaims {
                iat: base().iat + 120,
                ..base()
            }),
        ),
        ("not a JWT", "not.a.proof".into()),
        ("a bad signature", {
            let p = refused(base());
            let (head, _) = p.rsplit_once('.').unwrap();
            format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]))
        }),
        ("another key's signature", {
            let other = DeviceKey::generate();
            let theirs = other.sign(&base());
            let mine = key.sign(&base());
            let (head, _) = mine.split_once('.').unwrap();
            let (_, rest) = theirs.split_once('.').unwrap();
            format!("{head}.{rest}")
        }),
    ];
    for (what, p) in cases {
        let (status, body) = refresh_with(&server, &refresh, Some(p)).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
    }
    // A replayed proof, on this replica or another one sharing the database.
    let p = key.sign(&base());
    let (status, body) = refresh_with(&server, &refresh, Some(p.clone())).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = refresh_with(&server, &refresh, Some(p.clone())).await;
    assert_error(status, &body, 400, "invalid_dpop_proof");
    let replica = server.replica().await;
    let (status, body) = refresh_with(&replica, &refresh, Some(p)).await;
    assert_error(status, &body, 400, "invalid_dpop_proof");
    let (status, body) = refresh_with(&replica, &refresh, Some(key.sign(&base()))).await;
    assert_eq!(status, 200, "a fresh proof works on the replica: {body}");
    assert_ne!(body["access_token"], access.as_str());
    let access = body["access_token"].as_str().unwrap().to_string();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    // Hostile values: an iat at the ends of i64 (no overflow, no proof that lives forever),
    // and key coordinates of the wrong size (no panic, no second thumbprint for one key).
    for iat in [i64::MIN, i64::MIN + 1, 0, i64::MAX] {
        let (status, body) = refresh_with(
            &server,
            &refresh,
            Some(refused(ProofClaims { iat, ..base() })),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "iat {iat}: {body}"
        );
    }
    let forged = |jwk: Value, alg: &str| {
        let head = URL_SAFE_NO_PAD
            .encode(serde_json::json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk }).to_string());
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base()).unwrap());
        format!("{head}.{claims}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]))
    };
    let b = |n: usize| URL_SAFE_NO_PAD.encode(vec![7u8; n]);
    for (what, p) in [
        (
            "a short Ed25519 x",
            forged(
                serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": "AA" }),
                "EdDSA",
            ),
        ),
        (
            "a long Ed25519 x",
            forged(
                serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b(33) }),
                "EdDSA",
            ),
        ),
        (
            "P-256 of 31 + 33 bytes",
            forged(
                serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b(31), "y": b(33) }),
                "ES256",
            ),
        ),
        (
            "a private key",
            forged(
                serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b(32), "y": b(32), "d": b(32) }),
                "ES256",
            ),
        ),
        (
            "a symmetric alg",
            forged(serde_json::json!({ "kty": "oct", "k": b(32) }), "HS256"),
        ),
    ] {
        let (status, body) = refresh_with(&server, &refresh, Some(p)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{what}: {body}"
        );
    }

    // The account API: a bound token only as `DPoP` with a proof by its key for this request.
    let api = |scheme: &str, proof: Option<String>| {
        let mut req = server
            .http
            .get(server.url("/api/v1/me/sessions"))
            .header("Authorization", format!("{scheme} {access}"));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send()
    };
    let api_proof = |claims: ProofClaims| key.sign(&claims);
    let get = || ProofClaims {
        ath: Some(ath(&access)),
        ..proof(&server, "GET", "/api/v1/me/sessions")
    };
    let res = api("Bearer", None).await.unwrap();
    assert_eq!(res.status(), 401, "a bound token is never a bearer token");
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    for (what, p) in [
        ("no proof", None),
        (
            "a wrong ath",
            Some(api_proof(ProofClaims {
                ath: Some(ath("another token")),
                ..get()
            })),
        ),
        (
            "no ath",
            Some(api_proof(ProofClaims { ath: None, ..get() })),
        ),
        (
            "another method",
            Some(api_proof(ProofClaims {
                htm: "DELETE".into(),
                ..get()
            })),
        ),
        ("another key", Some(DeviceKey::generate().sign(&get()))),
    ] {
        let res = api("DPoP", p).await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_dpop_proof\""),
            "{what}: {challenge}"
        );
    }
    let res = api("DPoP", Some(api_proof(get()))).await.unwrap();
    assert_eq!(res.status(), 200);
    let sessions: Value = res.json().await.unwrap();
    let session = &sessions["devices"][0]["sessions"][0];
    assert_eq!(session["key_thumbprint"], key.thumbprint());
    assert_eq!(claims_of(&access)["cnf"]["jkt"], key.thumbprint());
}

async fn an_eddsa_proof_binds_as_well(backend: Backend) {
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let der = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: [42u8; 32],
        public_key: None,
    };
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&der).unwrap();
    let key = EncodingKey::from_ed_der(der.as_bytes());
    let jwk = Jwk {
        common: Default::default(),
        algorithm: Jwk::from_encoding_key(&key, Algorithm::EdDSA)
            .unwrap()
            .algorithm,
    };
    let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(jwk);
    let claims = proof(&server, "POST", "/token");
    let p = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let tokens = sign_in(&server, "ann@example.com").await;
    let (status, body) =
        refresh_with(&server, tokens["refresh_token"].as_str().unwrap(), Some(p)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        jkt
    );
}

async fn dpop_jkt_binds_the_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let signin = SignIn::new().set("dpop_jkt", Some(key.thumbprint()));
    let cb = callback(&server, &signin, "ann@example.com").await;
    let code = query_param(&cb, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "latchkey-desktop"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", signin.pkce.verifier.as_str()),
    ];
    let other = DeviceKey::generate();
    let p = other.sign(&proof(&server, "POST", "/token"));
    let (status, body, _) = token_request(&server, &form, Some(p)).await;
    assert_error(status, &body, 400, "invalid_grant");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("dpop_jkt"));

    let bad = SignIn::new().set("dpop_jkt", Some("short"));
    let res = browser()
        .get(bad.authorize_url(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "an error goes back to the app");
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
}

async fn a_required_nonce_is_asked_for_and_honoured(backend: Backend) {
    let server = TestServer::with(backend, |s| s.dpop.require_nonce = true).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let tokens = sign_in(&server, "ann@example.com").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "latchkey-desktop"),
        ("refresh_token", refresh),
    ];
    let (status, body, nonce) = token_request(
        &server,
        &form,
        Some(key.sign(&proof(&server, "POST", "/token"))),
    )
    .await;
    assert_error(status, &body, 400, "use_dpop_nonce");
    let nonce = nonce.expect("the error carries a nonce");
    let forged = ProofClaims {
        nonce: Some(URL_SAFE_NO_PAD.encode([1u8; 24])),
        ..proof(&server, "POST", "/token")
    };
    let (status, body, _) = token_request(&server, &form, Some(key.sign(&forged))).await;
    assert_error(status, &body, 400, "use_dpop_nonce");
    let good = ProofClaims {
        nonce: Some(nonce),
        ..proof(&server, "POST", "/token")
    };
    let (status, body, next) = token_request(&server, &form, Some(key.sign(&good))).await;
    assert_eq!(status, 200, "{body}");
    assert!(next.is_some(), "a fresh nonce for the next proof");
}

async fn a_grace_replay_with_another_key_is_refused_and_rolled_back(backend: Backend) {
    let server = TestServer::with(backend, |s| s.tokens.reuse_grace_secs = 30).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let tokens = bound_sign_in(&server, "ann@example.com", &key).await;
    let session = claims_of(tokens["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = refresh_with(
        &server,
        &first,
        Some(key.sign(&proof(&server, "POST", "/token"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The previous token replayed inside the grace window, by someone else's key.
    let thief = DeviceKey::generate();
    let (status, body) = refresh_with(
        &server,
        &first,
        Some(thief.sign(&proof(&server, "POST", "/token"))),
    )
    .await;
    assert_error(status, &body, 400, "invalid_grant");
    assert_eq!(events_of(&server, &session, "key_mismatch").await.len(), 1);
    assert!(
        events_of(&server, &session, "grace_replay")
            .await
            .is_empty(),
        "the replay was rolled back"
    );
    let chain = chains::chain(&server.db, &session).await.unwrap();
    assert_eq!(
        chain
            .iter()
            .filter(|l| l.state == LinkState::Active)
            .count(),
        0,
        "the family is revoked"
    );
}

async fn a_bound_code_needs_its_proof(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let key = DeviceKey::generate();
    let signin = SignIn::new().set("dpop_jkt", Some(key.thumbprint()));
    let cb = callback(&server, &signin, "ann@example.com").await;
    let code = query_param(&cb, "code").unwrap();
    let (status, body) = exchange(&server, &code, &signin.pkce.verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "no proof: {body}"
    );
}

async fn a_public_clients_bearer_family_is_bound_by_its_first_proof(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.add_user("ann@example.com", Role::User).await;
    let tokens = sign_in(&server, "ann@example.com").await;
    let session = claims_of(tokens["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let key = DeviceKey::generate();
    let (status, body) = refresh_with(
        &server,
        tokens["refresh_token"].as_str().unwrap(),
        Some(key.sign(&proof(&server, "POST", "/token"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh_token"].as_str().unwrap().to_string();
    // RFC 9449 §5: from now on the family is the key's.
    let (status, body) = refresh_with(&server, &next, None).await;
    assert_error(status, &body, 400, "invalid_grant");
    let found = events_of(&server, &session, "key_mismatch").await;
    assert_eq!(found[0].details["bound_jkt"], key.thumbprint());
}

async fn nonces_from_one_replica_work_on_another(backend: Backend) {
    let server = TestServer::with(backend, |s| s.dpop.require_nonce = true).await;
    server.add_user("ann@example.com", Role::User).await;
    let replica = server.replica_with(|s| s.dpop.require_nonce = true).await;
    let key = DeviceKey::generate();
    let tokens = sign_in(&server, "ann@example.com").await;
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "latchkey-desktop"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    let (_, _, nonce) = token_request(
        &server,
        &form,
        Some(key.sign(&proof(&server, "POST", "/token"))),
    )
    .await;
    let good = ProofClaims {
        nonce: nonce.clone(),
        ..proof(&server, "POST", "/token")
    };
    let (status, body, _) = token_request(&replica, &form, Some(key.sign(&good))).await;
    assert_eq!(status, 200, "the other replica's nonce: {body}");
}

both_backends!(
    a_grace_replay_with_another_key_is_refused_and_rolled_back,
    a_bound_code_needs_its_proof,
    a_public_clients_bearer_family_is_bound_by_its_first_proof,
    nonces_from_one_replica_work_on_another,
    a_bound_family_rotates_and_a_stolen_copy_kills_it,
    a_bearer_session_stays_bearer,
    every_proof_is_checked_to_the_letter,
    an_eddsa_proof_binds_as_well,
    dpop_jkt_binds_the_code,
    a_required_nonce_is_asked_for_and_honoured,
);
