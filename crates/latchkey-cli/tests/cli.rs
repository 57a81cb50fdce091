//! The `latchkey` binary as a user runs it, against a real latchkeyd on 127.0.0.1:0 and the
//! real keychain of the session `scripts/with-keychain` sets up. Each "machine" is a home
//! directory of its own.

use latchkey_testkit::{approve_code, complete_sign_in, files, Latchkeyd};
use latchkeyd::store::users::Role;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

async fn latchkeyd() -> Latchkeyd {
    Latchkeyd::start(Default::default(), &[("alice@example.com", Role::User)]).await
}

fn keychain() -> String {
    std::env::var("LATCHKEY_TEST_KEYCHAIN").unwrap_or_else(|_| "secret-service".into())
}

fn latchkey(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("LATCHKEY_KEYCHAIN", keychain())
        .env_remove("LATCHKEY_ACCOUNT")
        .env_remove("LATCHKEY_ISSUER");
    cmd
}

fn run(home: &Path, args: &[&str]) -> Output {
    latchkey(home).args(args).output().unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "latchkey {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(home, &all)).unwrap()
}

/// `latchkey login --no-browser`, with a person completing the printed address in a browser.
async fn login(home: &Path, issuer: &str, device: &str) -> String {
    let mut child = latchkey(home)
        .args([
            "login",
            "--issuer",
            issuer,
            "--no-browser",
            "--device-name",
            device,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    while !url.contains("/authorize?") {
        url.clear();
        assert!(
            stderr.read_line(&mut url).unwrap() > 0,
            "login prints the address"
        );
    }
    let page = complete_sign_in(url.trim(), "alice@example.com").await;
    assert!(page.contains("You are signed in"));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_status_token_sessions_revoke_others_and_logout() {
    let server = latchkeyd().await;
    let issuer = server.issuer.clone();
    let laptop = tempfile::tempdir().unwrap();
    let phone = tempfile::tempdir().unwrap();

    let said = login(laptop.path(), &issuer, "laptop").await;
    assert!(said.contains("Signed in as alice@example.com"), "{said}");

    let status = ok(laptop.path(), &["status"]);
    assert!(status.contains("alice@example.com"), "{status}");
    assert!(status.contains("valid for"), "{status}");
    assert!(
        status.contains("bound to this device (DPoP key"),
        "{status}"
    );
    let status = json(laptop.path(), &["status"]);
    assert_eq!(status["keychain"], keychain());
    assert_eq!(status["accounts"][0]["state"], "signed_in");
    assert_eq!(status["accounts"][0]["current"], true);
    assert_eq!(
        status["accounts"][0]["device_key"].as_str().map(str::len),
        Some(43)
    );

    let token = ok(laptop.path(), &["token"]);
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    assert_eq!(
        ok(laptop.path(), &["token"]),
        token,
        "a valid token is served from the keychain"
    );
    // The token is bound to this device: scripts get both headers for one request.
    let url = format!("{issuer}/api/v1/me");
    let headers = ok(laptop.path(), &["token", "--request", "get", &url]);
    let mut req = reqwest::Client::new().get(&url);
    for line in headers.lines() {
        let (name, value) = line.split_once(": ").expect("a header line");
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{headers}");
    let bearer = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401, "a bound token is not a bearer token");

    let sessions = json(laptop.path(), &["sessions"]);
    let me = &sessions["devices"][0];
    assert_eq!(me["current"], true);
    assert_eq!(me["device"]["name"], "laptop");
    let text = ok(laptop.path(), &["sessions"]);
    assert!(text.contains("laptop (linux)  ← this device"), "{text}");
    assert!(text.contains("active, key-bound"), "{text}");

    login(phone.path(), &issuer, "phone").await;
    let both = json(laptop.path(), &["sessions", "--state", "active"]);
    assert_eq!(both["total"], 2);
    let done = ok(laptop.path(), &["revoke", "--others"]);
    assert_eq!(done.trim(), "Signed out 1 other session.");
    let refused = run(phone.path(), &["sessions"]);
    assert_eq!(refused.status.code(), Some(3), "the phone is signed out");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));

    let sid = me["sessions"][0]["id"].as_str().unwrap().to_string();
    let family = json(laptop.path(), &["family", &sid]);
    assert_eq!(family["generations"][0]["generation"], 1);
    let chain = ok(laptop.path(), &["family", &sid]);
    assert!(chain.contains("gen    1  active"), "{chain}");
    assert_eq!(
        run(laptop.path(), &["family", "no-such-session"])
            .status
            .code(),
        Some(7)
    );

    let accounts = json(laptop.path(), &["accounts"]);
    assert_eq!(accounts["account"].as_array().unwrap().len(), 1);
    let bye = ok(laptop.path(), &["logout"]);
    assert!(bye.contains("the server revoked the session"), "{bye}");
    assert_eq!(run(laptop.path(), &["token"]).status.code(), Some(3));
    let status = json(laptop.path(), &["status"]);
    assert_eq!(status["accounts"][0]["state"], "signed_out");

    // No token anywhere on disk: not in config, data, or anything else under either home.
    for home in [laptop.path(), phone.path()] {
        for file in files(home) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_string();
            assert!(
                !text.contains("lkrt_") && !text.contains("eyJ"),
                "a token in {}",
                file.display()
            );
            assert!(
                !text.contains(token.trim()),
                "the access token in {}",
                file.display()
            );
        }
    }
    let forgot = ok(laptop.path(), &["forget", "alice@example.com"]);
    assert!(forgot.contains("Forgot alice@example.com"));
}

/// The headers `latchkey token --request METHOD URL` prints, on a request.
fn with_headers(req: reqwest::RequestBuilder, headers: &str) -> reqwest::RequestBuilder {
    headers.lines().fold(req, |req, line| {
        let (name, value) = line.split_once(": ").expect("a header line");
        req.header(name, value)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_api_takes_the_device_token_until_the_device_signs_out() {
    let server = latchkeyd().await;
    let issuer = server.issuer.clone();
    let secret = latchkeyd::store::clients::add(
        &server.db,
        &latchkeyd::store::clients::NewClient {
            client_id: "notes-api",
            name: "Notes API",
            kind: latchkeyd::store::clients::ClientKind::Confidential,
            redirect_uris: &[],
            grant_types: &[latchkeyd::store::clients::GrantType::ClientCredentials],
            scopes: &["ssf".to_string()],
            first_party: false,
        },
        latchkeyd::store::audit::Actor::Operator("test"),
        0,
    )
    .await
    .unwrap()
    .unwrap();
    let guard = latchkey_guard::Guard::start(latchkey_guard::GuardConfig::new(
        &issuer,
        "notes-api",
        secret.expose(),
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = notes_api::Notes::open(dir.path().join("notes.db")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notes = format!("http://{}/notes", listener.local_addr().unwrap());
    let app = notes_api::router(notes_api::AppState {
        guard: guard.clone(),
        db,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let laptop = tempfile::tempdir().unwrap();
    login(laptop.path(), &issuer, "laptop").await;
    let http = reqwest::Client::new();
    let headers = ok(laptop.path(), &["token", "--request", "POST", &notes]);
    let res = with_headers(http.post(&notes), &headers)
        .json(&serde_json::json!({ "text": "buy milk" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "a DPoP-bound token with its proof");
    let headers = ok(laptop.path(), &["token", "--request", "GET", &notes]);
    let res = with_headers(http.get(&notes), &headers)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["notes"][0]["text"], "buy milk");

    // Headers made before the device signs out: the token has minutes to live.
    let kept = ok(laptop.path(), &["token", "--request", "GET", &notes]);
    ok(laptop.path(), &["logout"]);
    let started = std::time::Instant::now();
    while guard.health().revoked_sessions == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the API learned of the sign-out within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let res = with_headers(http.get(&notes), &kept).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("was revoked"), "{challenge}");
}

/// A shell with no display, no browser and no Secret Service: a server reached over SSH, a
/// container, a service.
fn headless(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
}

#[test]
fn without_a_keychain_nothing_is_stored_unless_the_user_opts_in() {
    let home = tempfile::tempdir().unwrap();
    let out = headless(&mut latchkey(home.path()))
        .args(["login", "--device", "--keychain", "secret-service"])
        .args(["--issuer", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("not usable") && message.contains("fix:"),
        "{message}"
    );
    assert!(message.contains("insecure-file"), "{message}");
    assert!(files(home.path()).is_empty(), "nothing was written");

    // status still reports, and says where the trouble is.
    let out = headless(&mut latchkey(home.path()))
        .args(["status", "--keychain", "secret-service"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("No accounts"), "{report}");
    assert!(
        report.contains("New sign-ins cannot be stored here: the Secret Service")
            && report.contains("fix:"),
        "{report}"
    );

    let status = ok(home.path(), &["status", "--keychain", "insecure-file"]);
    assert!(status.contains("INSECURE plain file"), "{status}");
}

/// `latchkey login --device` started: the running command and the code it printed.
fn start_login_with_code(
    cmd: &mut Command,
    issuer: &str,
    device: &str,
    extra: &[&str],
) -> (Child, String) {
    let mut child = cmd
        .args([
            "login",
            "--device",
            "--issuer",
            issuer,
            "--device-name",
            device,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut shown = String::new();
    while !shown.contains("Waiting for you to approve") {
        assert!(
            stderr.read_line(&mut shown).unwrap() > 0,
            "login prints the code: {shown}"
        );
    }
    assert!(shown.contains(&format!("    {issuer}/device\n")), "{shown}");
    let code = shown
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 9 && l.as_bytes()[4] == b'-')
        .unwrap_or_else(|| panic!("a code like BCDF-GHJK in {shown}"))
        .to_string();
    (child, code)
}

/// The command's stdout, once it succeeded.
fn finished(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `latchkey login --device` at latchkeyd, with a person approving the code in a browser
/// elsewhere; the command's stdout.
async fn login_with_code(cmd: &mut Command, issuer: &str, device: &str) -> String {
    let (child, code) = start_login_with_code(cmd, issuer, device, &[]);
    let page = approve_code(
        &format!("{issuer}/device?user_code={code}"),
        "alice@example.com",
    )
    .await;
    assert!(page.contains("Your device is signed in"), "{page}");
    finished(child)
}

/// The certified peer (node-oidc-provider) from `../shared/peers`, prepared by `scripts/test`;
/// its issuer, while the returned process lives.
fn peer() -> (String, Child) {
    let dir = std::path::PathBuf::from(
        std::env::var("LATCHKEY_PEERS_DIR")
            .expect("LATCHKEY_PEERS_DIR is not set: run ./scripts/test, which prepares the peer"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("node")
        .arg(dir.join("oidc-peer.mjs"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs the peer");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "the peer starts: {line}");
    // It goes on writing (notices on first use of a feature): a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (format!("http://127.0.0.1:{port}"), child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_code_at_the_certified_peer() {
    let (issuer, mut peer) = peer();
    let home = tempfile::tempdir().unwrap();
    let (child, code) = start_login_with_code(
        &mut latchkey(home.path()),
        &issuer,
        "build-server",
        &[
            "--client-id",
            "peer-desktop",
            "--scope",
            "openid offline_access",
        ],
    );
    // The peer's own pages (code confirmation, sign-in, consent), walked by the peer kit's
    // browser bot up to its "Sign-in Success" page.
    let bot =
        std::path::Path::new(&std::env::var("LATCHKEY_PEERS_DIR").unwrap()).join("browser-bot.mjs");
    let script = format!(
        "import('{}').then(async (m) => {{ try {{ await m.signIn(process.argv[1], \
         {{ user: 'alice', password: 'pw', redirectPrefix: 'never:' }}); process.exit(1); }} \
         catch (e) {{ if (/Sign-in Success/.test(e.message)) process.exit(0); \
         console.error(e.message); process.exit(1); }} }})",
        bot.display()
    );
    let walked = Command::new("node")
        .args(["-e", &script, &format!("{issuer}/device?user_code={code}")])
        .status()
        .unwrap();
    assert!(walked.success(), "the peer's device pages were walked");
    let said = finished(child);
    assert!(said.contains(&format!("at {issuer}")), "{said}");
    let token = ok(home.path(), &["token"]);
    assert!(token.starts_with("ey"), "an access token from the peer");
    let _ = peer.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_shell_signs_in_with_a_code_into_the_kernel_keyring() {
    let server = latchkeyd().await;
    let home = tempfile::tempdir().unwrap();
    let shell = || {
        let mut cmd = latchkey(home.path());
        headless(&mut cmd).env("LATCHKEY_KEYCHAIN", "auto");
        cmd
    };
    // Without --device there is nothing to open a browser with: it says so, and what to do.
    let out = shell()
        .args(["login", "--issuer", &server.issuer])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let told = String::from_utf8_lossy(&out.stderr);
    assert!(
        told.contains("no display") && told.contains("latchkey login --device --issuer"),
        "{told}"
    );

    let said = login_with_code(&mut shell(), &server.issuer, "build-server").await;
    assert!(said.contains("Signed in as alice@example.com"), "{said}");
    assert!(said.contains("Linux kernel keyring"), "{said}");

    // A later login on the same machine (another session keyring entirely) finds it.
    let later = |args: &[&str]| {
        let mut cmd = Command::new("keyctl");
        cmd.args(["session", "-", env!("CARGO_BIN_EXE_latchkey")])
            .args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("LATCHKEY_KEYCHAIN", "auto")
            .env_remove("LATCHKEY_ACCOUNT");
        headless(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "latchkey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let status = later(&["status"]);
    assert!(status.contains("signed in"), "{status}");
    assert!(
        status.contains("tokens in: Linux kernel keyring (keyutils); kept by the kernel")
            && status.contains("NOT a reboot"),
        "{status}"
    );
    assert!(later(&["token"]).starts_with("eyJ"));
    let sessions = later(&["sessions"]);
    assert!(
        sessions.contains("build-server (linux)  ← this device"),
        "{sessions}"
    );
    later(&["logout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_an_insecure_file_account_whatever_the_system_keychain() {
    let server = latchkeyd().await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = latchkey(home.path());
    headless(&mut cmd).env("LATCHKEY_KEYCHAIN", "insecure-file");
    login_with_code(&mut cmd, &server.issuer, "container").await;
    // The system keychain is unusable here, and the account lives elsewhere anyway.
    let out = headless(&mut latchkey(home.path()))
        .env("LATCHKEY_KEYCHAIN", "auto")
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("alice@example.com"), "{report}");
    assert!(report.contains("signed in"), "{report}");
    assert!(
        report.contains("tokens in: INSECURE plain file"),
        "{report}"
    );
}

#[test]
fn help_usage_errors_and_completions() {
    let home = tempfile::tempdir().unwrap();
    let help = ok(home.path(), &["--help"]);
    for word in [
        "login",
        "status",
        "token",
        "sessions",
        "revoke",
        "family",
        "logout",
        "Exit codes",
    ] {
        assert!(help.contains(word), "{word} in --help");
    }
    assert_eq!(run(home.path(), &["revoke"]).status.code(), Some(2));
    assert_eq!(run(home.path(), &["frobnicate"]).status.code(), Some(2));
    let nobody = run(home.path(), &["switch", "nobody"]);
    assert_eq!(nobody.status.code(), Some(3));
    assert_eq!(run(home.path(), &["token"]).status.code(), Some(3));
    assert!(ok(home.path(), &["completions", "bash"]).contains("complete -F"));
    assert!(ok(home.path(), &["completions", "zsh"]).contains("#compdef latchkey"));
    let version = ok(home.path(), &["--version"]);
    assert!(version.starts_with("latchkey "), "{version}");
}
