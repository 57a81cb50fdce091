//! A real latchkeyd on 127.0.0.1:0 over a real SQLite file or a fresh PostgreSQL database, with
//! a manual clock, and a scripted browser that walks the sign-in form like a person would.

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkeyd::db::Db;
use latchkeyd::store::clients::{self, ClientKind};
use latchkeyd::store::users::{self, Role};
use latchkeyd::{ManualClock, Server, Settings};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery";
pub const REDIRECT: &str = "http://127.0.0.1:61234/callback";

pub struct TestServer {
    /// The issuer URL (the same for every replica).
    pub base: String,
    /// Where this replica listens.
    pub addr: String,
    /// Where its `/metrics` are, if `metrics_listen` was set.
    pub metrics: Option<String>,
    pub clock: Arc<ManualClock>,
    pub db: Db,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The database URL, for running the `latchkeyd` binary against the same database.
    pub database: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A PostgreSQL database of its own for one test, on the cluster the test command started.
async fn fresh_postgres() -> String {
    let base = std::env::var("LATCHKEY_TEST_POSTGRES").expect(
        "LATCHKEY_TEST_POSTGRES is not set: run ./scripts/test, which starts a throwaway PostgreSQL",
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&base)
        .await
        .expect("connect to the test PostgreSQL");
    let name = format!("lk_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a database URL ends in /DBNAME");
    format!("{prefix}/{name}")
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    pub async fn with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("latchkey.db").display()),
            Backend::Postgres => fresh_postgres().await,
        };
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            master_key_file: Some(dir.path().join("master.key")),
            database: Some(database.clone()),
            ..Settings::default()
        };
        tweak(&mut settings);
        Self::launch(
            settings,
            dir,
            database,
            Arc::new(ManualClock::starting_now()),
        )
        .await
    }

    /// A second replica: the same database, master key and public issuer URL, its own port.
    pub async fn replica(&self) -> Self {
        self.replica_with(|_| {}).await
    }

    pub async fn replica_with(&self, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: Some(self.base.clone()),
            master_key_file: Some(self.dir.path().join("master.key")),
            database: Some(self.database.clone()),
            ..Settings::default()
        };
        tweak(&mut settings);
        let dir = tempfile::tempdir().unwrap();
        Self::launch(settings, dir, self.database.clone(), self.clock.clone()).await
    }

    async fn launch(
        settings: Settings,
        dir: tempfile::TempDir,
        database: String,
        clock: Arc<ManualClock>,
    ) -> Self {
        let server = Server::bind(settings, clock.clone())
            .await
            .expect("server starts");
        let base = server.issuer().to_string();
        let addr = format!("http://{}", server.local_addr());
        let metrics = server.metrics_addr().map(|a| format!("http://{a}/metrics"));
        let db = server.db().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            base,
            addr,
            metrics,
            clock,
            db,
            dir,
            database,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("latchkey.db")
    }

    pub async fn add_user(&self, email: &str, role: Role) -> users::User {
        users::add(
            &self.db,
            email,
            None,
            role,
            PASSWORD,
            latchkeyd::store::audit::Actor::Operator("test"),
            self.clock.now_ms(),
        )
        .await
        .expect("add user")
    }

    /// POSTs a form to an endpoint and returns status and JSON body.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// GETs an endpoint and decodes its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Registers a second first-party public native client, "other-app", on the loopback
    /// redirect, with every scope the desktop app has.
    pub async fn add_other_app(&self) {
        self.add_client("other-app", "Other app", ClientKind::Public, &[], true)
            .await;
    }

    /// Registers a client on the loopback redirect (and an https one); a confidential
    /// client's secret is returned.
    pub async fn add_client(
        &self,
        client_id: &str,
        name: &str,
        kind: ClientKind,
        scopes: &[&str],
        first_party: bool,
    ) -> Option<String> {
        let scopes: Vec<String> = if scopes.is_empty() && first_party {
            latchkeyd::scope::USER
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            scopes.iter().map(|s| s.to_string()).collect()
        };
        clients::add(
            &self.db,
            &clients::NewClient {
                client_id,
                name,
                kind,
                redirect_uris: &[
                    "http://127.0.0.1/callback".into(),
                    "https://api.example.com/cb".into(),
                ],
                grant_types: &[],
                scopes: &scopes,
                first_party,
            },
            latchkeyd::store::audit::Actor::Operator("test"),
            self.clock.now_ms(),
        )
        .await
        .unwrap()
        .map(|s| s.into_inner())
    }

    /// Registers a service account: a confidential client for `client_credentials` only,
    /// with these service scopes; returns its secret.
    pub async fn add_service(&self, client_id: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        clients::add(
            &self.db,
            &clients::NewClient {
                client_id,
                name: client_id,
                kind: ClientKind::Confidential,
                redirect_uris: &[],
                grant_types: &[clients::GrantType::ClientCredentials],
                scopes: &scopes,
                first_party: false,
            },
            latchkeyd::store::audit::Actor::Operator("test"),
            self.clock.now_ms(),
        )
        .await
        .expect("add service account")
        .expect("a confidential client has a secret")
        .expose()
        .clone()
    }

    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "latchkey-desktop"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub use latchkeyd::Clock;

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// An OAuth error answer (RFC 6749 §5.2): this status, this `error` code. Prints the body.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected_status, Some(code)),
        "{body}"
    );
}

/// A browser: keeps cookies, never follows redirects (the test reads each one).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) LatchkeyTest/1.0")
        .build()
        .unwrap()
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub struct SignIn {
    pub params: Vec<(String, String)>,
    pub pkce: Pkce,
    pub state: String,
}

impl SignIn {
    pub fn new() -> Self {
        let pkce = Pkce::new();
        let state = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        let params = [
            ("response_type", "code"),
            ("client_id", "latchkey-desktop"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile email offline_access"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", state.as_str()),
            ("nonce", "n-0S6_WzA2Mj"),
            ("device_name", "Alice's laptop"),
            ("device_platform", "Linux"),
            ("app_version", "0.1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            params,
            pkce,
            state,
        }
    }

    pub fn set(mut self, name: &str, value: Option<&str>) -> Self {
        self.params.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.params.push((name.into(), v.into()));
        }
        self
    }

    pub fn authorize_url(&self, server: &TestServer) -> String {
        let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(&self.params);
        url.to_string()
    }
}

/// Opens the sign-in page; returns the browser with its cookie and the page.
pub async fn open_form(server: &TestServer, signin: &SignIn) -> (reqwest::Client, String) {
    let browser = browser();
    let res = browser
        .get(signin.authorize_url(server))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the sign-in page opens");
    (browser.clone(), res.text().await.unwrap())
}

/// Submits the sign-in form; returns the response (a redirect on success).
pub async fn submit_form(
    server: &TestServer,
    browser: &reqwest::Client,
    page: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    browser
        .post(server.url("/authorize"))
        .form(&[
            (
                "request",
                hidden(page, "request")
                    .expect("form has a request id")
                    .as_str(),
            ),
            (
                "csrf_token",
                hidden(page, "csrf_token")
                    .expect("form has a CSRF token")
                    .as_str(),
            ),
            ("username", email),
            ("password", password),
            ("action", "signin"),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the form and returns the callback URL the browser was sent to.
pub async fn callback(server: &TestServer, signin: &SignIn, email: &str) -> String {
    let (browser, page) = open_form(server, signin).await;
    let res = submit_form(server, &browser, &page, email, PASSWORD).await;
    assert_eq!(res.status(), 303, "sign-in redirects back to the app");
    res.headers()["location"].to_str().unwrap().to_string()
}

pub async fn exchange(server: &TestServer, code: &str, verifier: &str) -> (u16, Value) {
    server
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "latchkey-desktop"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
}

/// The session (`sid`) an access token belongs to.
pub fn session_of(tokens: &Value) -> String {
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    claims["sid"].as_str().unwrap().to_string()
}

/// Signs a device out as the desktop app does: RFC 7009 revocation of its refresh token.
pub async fn sign_out(server: &TestServer, tokens: &Value) {
    let (status, body) = server
        .post_form(
            "/revoke",
            &[
                ("token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", "latchkey-desktop"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The whole sign-in: form, code, token response.
pub async fn sign_in(server: &TestServer, email: &str) -> Value {
    let signin = SignIn::new();
    let cb = callback(server, &signin, email).await;
    let code = query_param(&cb, "code").expect("callback carries a code");
    let (status, body) = exchange(server, &code, &signin.pkce.verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A confidential client (a resource server) that may introspect.
pub async fn resource_server(server: &TestServer) -> (String, String) {
    let secret = server
        .add_client(
            "api-gateway",
            "API gateway",
            ClientKind::Confidential,
            &[],
            false,
        )
        .await
        .unwrap();
    ("api-gateway".into(), secret)
}

/// The status of `GET /userinfo` with a bearer access token: 200 while it is good.
pub async fn userinfo_status(server: &TestServer, access_token: &str) -> u16 {
    server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs in through the form with `client_id`, authenticating the code exchange with
/// `secret` when the client is confidential; the token response.
pub async fn sign_in_with(
    server: &TestServer,
    email: &str,
    client_id: &str,
    secret: Option<&str>,
    scope: &str,
) -> Value {
    let signin = SignIn::new()
        .set("client_id", Some(client_id))
        .set("scope", Some(scope));
    let cb = callback(server, &signin, email).await;
    let code = query_param(&cb, "code").expect("callback carries a code");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &signin.pkce.verifier),
    ];
    if let Some(secret) = secret {
        form.push(("client_secret", secret));
    }
    let (status, body) = server.post_form("/token", &form).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn introspect(server: &TestServer, creds: &(String, String), token: &str) -> Value {
    let res = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(&creds.0, Some(&creds.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Does the PostgreSQL half run? Only with `LATCHKEY_TEST_POSTGRES` set (`scripts/test` sets it,
/// and `LATCHKEY_TEST_REQUIRE_POSTGRES`, so that CI never skips it). Without it each PostgreSQL
/// test returns at once, and the run says so once, on stderr past the harness's capture: a
/// plain `cargo test` must not look as if it had tested PostgreSQL.
pub fn postgres_configured() -> bool {
    static NOTED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("LATCHKEY_TEST_POSTGRES").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("LATCHKEY_TEST_REQUIRE_POSTGRES").is_none(),
        "LATCHKEY_TEST_REQUIRE_POSTGRES is set but LATCHKEY_TEST_POSTGRES is not"
    );
    NOTED.call_once(|| {
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\nnote: LATCHKEY_TEST_POSTGRES is not set: latchkeyd's PostgreSQL tests \
              (postgres::*, three_replicas_on_one_postgres_agree) are SKIPPED and count as \
              passed.\n      Run ./scripts/test, or start a throwaway cluster and point the \
              tests at it:\n        scripts/pg-throwaway start /tmp/pg 25432\n        \
              LATCHKEY_TEST_POSTGRES=postgres://postgres@127.0.0.1:25432/postgres cargo test \
              -p latchkeyd\n\n",
        );
    });
    false
}

/// Runs each named test against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::common::postgres_configured() {
                        return;
                    }
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Verifies a JWT with the server's published JWKS, the way a resource server would.
pub async fn verify(
    server: &TestServer,
    token: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    verify_requiring(server, token, audience, &["exp"]).await
}

/// Verifies a JWT with the server's JWKS: signature, issuer, audience, and these claims there.
pub async fn verify_requiring(
    server: &TestServer,
    token: &str,
    audience: &str,
    required: &[&str],
) -> (jsonwebtoken::Header, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = server.get_json("/jwks.json").await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the kid is published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[&server.base]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(required);
    validation.validate_exp = required.contains(&"exp");
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the token verifies against the JWKS");
    (header, data.claims)
}
