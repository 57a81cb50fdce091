//! What the client, CLI and desktop test suites share: a real latchkeyd on 127.0.0.1:0 over a
//! SQLite file, and a person at the browser who fills in its sign-in form.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey_client::browser::Browser;
use latchkey_client::keychain::Choice;
use latchkey_client::paths::Paths;
use latchkeyd::config::TokenPolicy;
use latchkeyd::store::users::{self, Role};
use latchkeyd::{Server, Settings, SystemClock};

pub const PASSWORD: &str = "correct horse battery";

/// A running latchkeyd; it stops when dropped.
pub struct Latchkeyd {
    pub issuer: String,
    pub db: latchkeyd::db::Db,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Latchkeyd {
    /// Starts a server with these accounts (all with [`PASSWORD`]) on the current runtime.
    pub async fn start(tokens: TokenPolicy, accounts: &[(&str, Role)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("address"),
            database: Some(format!("sqlite://{}", dir.path().join("l.db").display())),
            master_key_file: Some(dir.path().join("master.key")),
            tokens,
            ..Settings::default()
        };
        let server = Server::bind(settings, Arc::new(SystemClock))
            .await
            .expect("latchkeyd starts");
        for (email, role) in accounts {
            users::add(
                server.db(),
                email,
                None,
                *role,
                PASSWORD,
                latchkeyd::store::audit::Actor::System,
                0,
            )
            .await
            .expect("add account");
        }
        let issuer = server.issuer().to_string();
        let db = server.db().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Latchkeyd {
            issuer,
            db,
            _dir: dir,
            _stop: tx,
        }
    }
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    let end = html[start..].find('"').expect("end of the value");
    html[start..start + end].to_string()
}

/// Opens the sign-in page at `url`, signs in as `email`, and follows the redirect back to the
/// app; returns the page the app's loopback listener served.
pub async fn complete_sign_in(url: &str, email: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let res = http
        .post(url.split('?').next().expect("the form's address"))
        .form(&[
            ("request", hidden(&page, "request")),
            ("csrf_token", hidden(&page, "csrf_token")),
            ("username", email.to_string()),
            ("password", PASSWORD.to_string()),
            ("action", "signin".to_string()),
        ])
        .send()
        .await
        .unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_string();
    http.get(callback)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A person in a browser on another device: opens `verification_uri_complete` (the address
/// with the code in it), signs in as `email` and approves; returns the page that says how it
/// went.
pub async fn approve_code(verification_uri_complete: &str, email: &str) -> String {
    answer_code(verification_uri_complete, email, "approve").await
}

/// The same person saying no to the sign-in.
pub async fn deny_code(verification_uri_complete: &str) -> String {
    answer_code(verification_uri_complete, "", "deny").await
}

async fn answer_code(verification_uri_complete: &str, email: &str, action: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let page = http
        .get(verification_uri_complete)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Approving gives that device access"),
        "{page}"
    );
    http.post(
        verification_uri_complete
            .split('?')
            .next()
            .expect("the form's address"),
    )
    .form(&[
        ("request", hidden(&page, "request")),
        ("csrf_token", hidden(&page, "csrf_token")),
        ("username", email.to_string()),
        ("password", PASSWORD.to_string()),
        ("action", action.to_string()),
    ])
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
}

/// A person at the system browser: signs in as `0` in whatever page the app opens.
pub struct FormBrowser(pub &'static str);

impl Browser for FormBrowser {
    fn open(&self, url: &str) -> std::io::Result<()> {
        let (url, email) = (url.to_string(), self.0);
        tokio::spawn(async move {
            complete_sign_in(&url, email).await;
        });
        Ok(())
    }
}

/// The keychain under test: the Secret Service unless `LATCHKEY_TEST_KEYCHAIN` says otherwise.
pub fn keychain_under_test() -> Choice {
    std::env::var("LATCHKEY_TEST_KEYCHAIN")
        .unwrap_or_else(|_| "secret-service".into())
        .parse()
        .expect("LATCHKEY_TEST_KEYCHAIN names a keychain")
}

/// A client's files under a test's own home directory.
pub fn paths_under(home: &Path) -> Paths {
    Paths {
        config_dir: home.join("config"),
        data_dir: home.join("data"),
    }
}

/// Takes an account's lock (`Paths::lock_file`) as a refresh in another process would, until
/// the file returned is dropped.
pub fn hold_lock(path: &Path) -> std::fs::File {
    std::fs::create_dir_all(path.parent().expect("a lock file's directory")).unwrap();
    let held = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    held.lock().unwrap();
    held
}

/// Every file under `dir`, for the no-token-on-disk checks.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
