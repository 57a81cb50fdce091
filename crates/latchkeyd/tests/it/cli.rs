//! The `latchkeyd` binary as an operator uses it: account, client and key commands, startup
//! errors, the demo account, logs without secrets, graceful shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn latchkeyd(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkeyd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    cmd
}

fn run(cmd: &mut Command, stdin: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn accounts_clients_and_keys_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        latchkeyd(dir.path()).args([
            "user",
            "add",
            "Staff@Example.com",
            "--role",
            "support",
            "--password-stdin",
        ]),
        "s3cret-password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created support staff@example.com"), "{out}");
    assert!(
        dir.path().join("data/latchkey/latchkey.db").exists(),
        "SQLite in the XDG data dir"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("data/latchkey"), 0o700, "a private data dir");
        assert_eq!(mode("data/latchkey/latchkey.db"), 0o600);
        assert_eq!(mode("data/latchkey/master.key"), 0o600);
    }
    let (code, _, err) = run(
        latchkeyd(dir.path()).args(["user", "add", "staff@example.com", "--password-stdin"]),
        "another-password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(
        latchkeyd(dir.path()).args(["user", "add", "x@example.com", "--password-stdin"]),
        "short\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 8 characters"), "{err}");
    let (_, out, _) = run(latchkeyd(dir.path()).args(["user", "list"]), "");
    assert!(out.contains("support") && out.contains("staff@example.com"));
    assert!(!out.contains("argon2"), "no hashes in listings");

    let (code, out, err) = run(
        latchkeyd(dir.path()).args([
            "client",
            "add",
            "billing",
            "--name",
            "Billing",
            "--kind",
            "confidential",
            "--redirect-uri",
            "https://billing.example.com/cb",
        ]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lkcs_"), "the secret is shown once: {out}");
    let (_, out, _) = run(latchkeyd(dir.path()).args(["client", "list"]), "");
    assert!(
        out.contains("latchkey-desktop") && out.contains("built in") && out.contains("billing")
    );
    assert!(!out.contains("lkcs_"), "never again");
    let (code, _, err) = run(
        latchkeyd(dir.path()).args([
            "client",
            "add",
            "bad",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://evil.example/cb",
        ]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("loopback"), "{err}");
    let (code, _, err) = run(
        latchkeyd(dir.path()).args(["client", "remove", "latchkey-desktop"]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("built in"), "{err}");
    let (code, _, _) = run(
        latchkeyd(dir.path()).args(["client", "remove", "billing"]),
        "",
    );
    assert_eq!(code, 0);

    // A service account: no redirect URI, its registration as JSON, the secret shown once.
    let service = [
        "client",
        "add",
        "receiver",
        "--name",
        "Receiver",
        "--kind",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "ssf",
    ];
    let (code, out, err) = run(latchkeyd(dir.path()).args(service).arg("--json"), "");
    assert_eq!(code, 0, "{err}");
    let registered: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(registered["client_id"], "receiver");
    assert!(registered["client_secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("lkcs_")));
    assert_eq!(
        registered["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(registered["scopes"], serde_json::json!(["ssf"]));
    let (_, out, _) = run(latchkeyd(dir.path()).args(["client", "list"]), "");
    let line = out.lines().find(|l| l.starts_with("receiver")).unwrap();
    assert!(
        line.contains("client_credentials") && line.contains("ssf"),
        "{line}"
    );
    assert!(!out.contains("lkcs_"), "never again");
    for (extra, why) in [
        (&["--kind", "public"][..], "confidential"),
        (
            &["--redirect-uri", "https://r.example.com/cb"][..],
            "no redirect URI",
        ),
        (&["--scope", "openid"][..], "authorization_code"),
    ] {
        let mut args: Vec<&str> = service.to_vec();
        args[2] = "another";
        if extra[0] == "--kind" {
            args[6] = extra[1];
        } else {
            args.extend_from_slice(extra);
        }
        let (code, _, err) = run(latchkeyd(dir.path()).args(&args), "");
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }

    let (code, out, _) = run(
        latchkeyd(dir.path()).args(["keys", "rotate", "--alg", "ES256"]),
        "",
    );
    assert_eq!(code, 0);
    assert!(out.contains("ES256"));
    let (code, out, _) = run(latchkeyd(dir.path()).args(["keys", "rotate"]), "");
    assert_eq!(code, 0);
    let (_, out2, _) = run(latchkeyd(dir.path()).args(["keys", "list"]), "");
    assert_eq!(out2.lines().count(), 2, "{out2}");
    assert_eq!(out2.lines().filter(|l| l.ends_with("active")).count(), 1);
    assert!(out.contains("EdDSA"));
}

#[test]
fn startup_errors_are_clear_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(latchkeyd(dir.path()).args(["serve", "--listen", &addr]), "");
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let (code, _, err) = run(
        latchkeyd(dir.path()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "postgres://latchkey:hunter2@127.0.0.1:1/latchkey",
        ]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(!err.contains("hunter2"), "the password is redacted: {err}");

    let (code, _, err) = run(
        latchkeyd(dir.path()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "mysql://x/y",
        ]),
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("unsupported database URL"), "{err}");

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[tokens]\naccess_token_ttl = 5\n").unwrap();
    let (code, _, err) = run(
        latchkeyd(dir.path()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ]),
        "",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid config file") && err.contains("access_token_ttl"),
        "{err}"
    );

    // Demo accounts with printed passwords only where nobody else can reach them.
    for args in [
        ["--listen", "0.0.0.0:0", "--issuer", "http://127.0.0.1:7878"],
        [
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            "https://login.example.com",
        ],
    ] {
        let (code, out, err) = run(
            latchkeyd(dir.path()).args(["serve", "--demo"]).args(args),
            "",
        );
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("--demo") && err.contains("loopback"), "{err}");
        assert!(!out.contains("password"), "{out}");
    }
}

/// The README's run command in miniature: serve with the demo account, sign in with the printed
/// credentials, read the logs for secrets, stop with SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_signs_in_logs_no_secrets_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "log_format = \"json\"\n[tokens]\naccess_token_ttl_secs = 120\n",
    )
    .unwrap();
    let mut child = latchkeyd(dir.path())
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut issuer, mut password) = (String::new(), String::new());
    for _ in 0..12 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(url) = line.strip_prefix("latchkeyd is running at ") {
            issuer = url.trim().to_string();
        }
        if line.contains("demo@latchkey.local") {
            if let Some((_, pw)) = line.split_once("password ") {
                password = pw.trim().to_string();
                break;
            }
        }
    }
    assert!(issuer.starts_with("http://127.0.0.1:"), "prints its URL");
    assert!(password.len() >= 12, "prints the demo password");
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    // Sign in as the demo user through the form, against the real process.
    let meta: serde_json::Value =
        reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let pkce = Pkce::new();
    let mut url = url::Url::parse(meta["authorization_endpoint"].as_str().unwrap()).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "latchkey-desktop"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid offline_access"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ]);
    let b = browser();
    let page = b
        .get(url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = b
        .post(format!("{issuer}/authorize"))
        .form(&[
            ("request", hidden(&page, "request").unwrap().as_str()),
            ("csrf_token", hidden(&page, "csrf_token").unwrap().as_str()),
            ("username", "demo@latchkey.local"),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code = query_param(res.headers()["location"].to_str().unwrap(), "code").unwrap();
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(meta["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "latchkey-desktop"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["expires_in"], 120, "the config file was read");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refreshed: serde_json::Value = http
        .post(meta["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "latchkey-desktop"),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(refreshed["refresh_token"].is_string());
    // A replay, so the warning path is logged too.
    let _ = http
        .post(meta["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "latchkey-desktop"),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .unwrap();

    // SIGTERM: a graceful stop with exit code 0.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let logs = logs.join().unwrap();
    assert!(logs.lines().any(|l| l.starts_with('{')), "JSON logs");
    assert!(logs.contains("shutting down"));
    assert!(logs.contains("reuse"), "the replay is logged");
    let secrets = [
        code.as_str(),
        refresh,
        refreshed["refresh_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
        pkce.verifier.as_str(),
        password.as_str(),
    ];
    for s in secrets {
        assert!(
            !logs.contains(&s[s.len().min(5)..]),
            "a secret reached the logs"
        );
    }
    let _ = Duration::ZERO;
}
