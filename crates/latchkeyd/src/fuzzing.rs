//! Entry points for the coverage-guided fuzz targets in `fuzz/` (built with `--cfg fuzzing`):
//! each takes raw input as it would reach latchkeyd and runs the same parsing and checking code
//! the handlers run, asserting what must hold for every input. A panic, an overflow (they are
//! built with debug assertions) or a failed assertion is a finding.
//!
//! Signatures cannot be guessed, so the DPoP and access-token targets can also sign what the
//! fuzzer wrote, with keys of their own: then the checks behind the signature are reached too.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use url::Url;

use crate::config::{DpopPolicy, SigningAlg};
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::dpop::{self, Expected, Nonces};
use crate::http::params::{has_control, Params};
use crate::http::{authorize, client_auth, oauth};
use crate::keys::KeyRing;
use crate::store::clients::{validate_redirect_uri, Client};
use crate::tokens::{self, ACCESS_TOKEN_TYP};

const ISSUER: &str = "https://login.example.com";
/// The fixed "now" of every check: the seeds' DPoP proofs are issued at this second.
const NOW: i64 = 1_800_000_000_000;

/// Splits an input in two at its first NUL (a byte no HTTP value or form holds), so one input
/// can carry two fields.
fn two(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// The token request as `/token` reads it: the form, the client's credentials (Basic or in the
/// form), and the grant's own parameters. Input: the Authorization header, NUL, the body.
pub fn token_request(data: &[u8]) {
    let (authorization, body) = two(data);
    let Ok(params) = Params::parse(body) else {
        return;
    };
    for name in ["grant_type", "client_id", "refresh_token", "code", "scope"] {
        assert!(!params.get(name).is_some_and(has_control), "{name}");
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok((id, secret, _)) = client_auth::credentials(&headers, &params) {
        assert!(!id.is_empty() || params.get("client_id").is_none());
        assert!(!has_control(&id) && !secret.as_deref().is_some_and(has_control));
    }
    if let Some(verifier) = params.get("code_verifier") {
        if oauth::valid_verifier(verifier) {
            assert!((43..=128).contains(&verifier.len()));
        }
    }
    if let Some(token) = params.get("refresh_token") {
        // A token of any shape is looked up by its id and hash, or is unknown: no panic.
        let _ = crate::secret::parse_refresh_token(token);
    }
    let granted = "openid profile email offline_access account";
    if let Some(scope) = crate::store::rotation::refreshed_scope(params.get("scope"), granted) {
        for s in scope.split_ascii_whitespace() {
            assert!(crate::scope::contains(granted, s), "{s} was never granted");
        }
    }
}

/// The sign-in form as `POST /authorize` reads it before any database work: the browser
/// cookie, the form, the email typed, the device text. Input: the Cookie header, NUL, the body.
pub fn signin_form(data: &[u8]) {
    let (cookie, body) = two(data);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        headers.insert(header::COOKIE, value);
    }
    let _ = authorize::cookie_value(&headers, "lk_browser");
    let Ok(form) = Params::parse(body) else {
        return;
    };
    if let Some(email) = form.get("username") {
        if let Ok(normal) = crate::store::users::normalize_email(email) {
            assert!(normal.contains('@') && !has_control(&normal));
        }
    }
    for name in ["device_name", "device_platform", "app_version"] {
        if let Some(text) = authorize::device_text(form.get(name)) {
            assert!(text.chars().count() <= 100 && !has_control(&text));
        }
    }
    let _ = crate::http::params::control_in(body);
}

/// Redirect URIs: what may be registered, and which requested one matches a registered one.
/// Input: the registered URI, NUL, the requested one.
pub fn redirect_uri(data: &[u8]) {
    let (registered, requested) = two(data);
    let (Ok(registered), Ok(requested)) = (
        std::str::from_utf8(registered),
        std::str::from_utf8(requested),
    ) else {
        return;
    };
    let registrable = validate_redirect_uri(registered).is_ok();
    let client = Client::with_redirects(vec![registered.to_string()]);
    if client.redirect_uri_allowed(requested) {
        // An exact match, or the same loopback address and path on another port (RFC 8252
        // §7.3); never a fragment, never credentials.
        let req = Url::parse(requested).expect("an allowed URI parses");
        assert!(req.fragment().is_none());
        if requested != registered {
            let reg = Url::parse(registered).expect("a loopback registration parses");
            assert!(
                registrable,
                "only a registrable loopback URI widens to other ports"
            );
            assert_eq!(
                (reg.scheme(), reg.host(), reg.path()),
                (req.scheme(), req.host(), req.path())
            );
            assert!(req.username().is_empty() && req.password().is_none());
        }
    }
    let _ = authorize::form_action(requested);
    let _ = authorize::return_to(requested);
}

/// The query strings of the account and support APIs.
pub fn api_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = format!("/api/v1/x?{query}").parse::<Uri>() {
        crate::http::api::parse_queries(&uri);
    }
}

struct Keys {
    ring: KeyRing,
    nonces: Nonces,
    /// A client's DPoP key (P-256, aws-lc: signing is most of this target's time per input),
    /// and its public key as JWK coordinates.
    dpop: aws_lc_rs::signature::EcdsaKeyPair,
    dpop_xy: (String, String),
    _runtime: tokio::runtime::Runtime,
    _dir: std::path::PathBuf,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("latchkey-fuzz-{}", std::process::id()));
        let master = MasterKey::generate();
        let ring = runtime.block_on(async {
            let db = Db::connect(&format!("sqlite://{}/keys.db", dir.display()))
                .await
                .expect("a database for the fuzzing keys");
            db.migrate().await.expect("migrations");
            let db = db.with_chain_key(crate::store::audit::ChainKey::derive(&master));
            KeyRing::load(db, master.clone(), SigningAlg::EdDsa, 0, NOW)
                .await
                .expect("a signing key")
        });
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).expect("a P-256 key");
        let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret).expect("PKCS#8");
        let dpop = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.as_bytes(),
        )
        .expect("an aws-lc key");
        // SEC1 uncompressed: 0x04, then x and y, 32 bytes each.
        let point = aws_lc_rs::signature::KeyPair::public_key(&dpop)
            .as_ref()
            .to_vec();
        Keys {
            ring,
            nonces: Nonces::new(&master, 300),
            dpop,
            dpop_xy: (
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                URL_SAFE_NO_PAD.encode(&point[33..65]),
            ),
            _runtime: runtime,
            _dir: dir,
        }
    })
}

/// A DPoP proof as the token endpoint and the account API check it. Input: a mode byte, then
/// either a proof as sent (`DPoP` header), or the JSON claims of a proof that this target
/// signs with its own P-256 key (so the checks behind the signature are reached).
pub fn dpop_proof(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let proof = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(p) => p.to_string(),
            Err(_) => return,
        }
    } else {
        sign_dpop(k, rest)
    };
    let token = "an-access-token";
    for (method, url, access_token) in [
        ("POST", "https://login.example.com/token", None),
        ("GET", "https://login.example.com/api/v1/me", Some(token)),
    ] {
        let expected = Expected {
            method,
            url,
            access_token,
            require_nonce: mode & 2 == 2,
        };
        if let Ok(p) = dpop::verify(&proof, &expected, &DpopPolicy::default(), &k.nonces, NOW) {
            assert!(dpop::is_thumbprint(&p.jkt));
            assert!(!p.jti.is_empty() && p.jti.len() <= 256);
        }
    }
}

fn sign_dpop(k: &Keys, claims: &[u8]) -> String {
    let (x, y) = &k.dpop_xy;
    let header = serde_json::json!({
        "typ": "dpop+jwt",
        "alg": "ES256",
        "jwk": { "kty": "EC", "crv": "P-256", "x": x, "y": y },
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = k
        .dpop
        .sign(
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
        )
        .expect("signing");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// An access token as every protected resource verifies it. Input: a mode byte, then either a
/// token as presented, or claims that this target signs with latchkeyd's own active key as an
/// `at+jwt` (so the claims' checks are reached).
pub fn access_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let token = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        let key = k.ring.active();
        let mut token = key.header(ACCESS_TOKEN_TYP);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(rest, &mut token);
        let signature = key.sign(token.as_bytes()).expect("signing");
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    };
    if let Ok(claims) = tokens::verify_access_token(&k.ring, ISSUER, &token) {
        assert_eq!(claims.iss, ISSUER);
        let _ = claims.aud.contains(ISSUER);
        let _ = claims.has_scope("account");
    }
}
