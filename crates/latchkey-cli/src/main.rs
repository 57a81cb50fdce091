//! `latchkey`: sign in, tokens and sessions from the terminal, on Latchkey's client core.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use latchkey_client::browser::{Browser, PrintUrl, SystemBrowser};
use latchkey_client::keychain::Choice;
use latchkey_client::login::Device;
use latchkey_client::paths::Paths;
use latchkey_client::proto::{
    ChainQuery, Family, SessionId, SessionList, SessionQuery, SessionState, Timestamp,
};
use latchkey_client::{Error, Latchkey, LoginOptions, TokenState};
use serde::Serialize;
use serde_json::{json, Value};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (files, configuration)
  2  wrong usage
  3  not signed in, or the session was ended by the server: run `latchkey login`
  4  no usable keychain (the message says how to fix it)
  5  the server is unreachable or does not offer this
  6  sign-in did not complete (timed out, cancelled, refused)
  7  the server refused the request (no such session, not allowed)";

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Sign in to a Latchkey (or any OAuth 2.1) server and manage your sessions",
    long_about = "Sign in to a Latchkey (or any OAuth 2.1 / OpenID Connect) server from the terminal. \
Refresh tokens live only in the OS keychain; access tokens are refreshed ahead of expiry, one process at a time.",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The account to use (its label or id) instead of the current one.
    #[arg(long, global = true, env = "LATCHKEY_ACCOUNT")]
    account: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Where tokens are kept: auto, secret-service, keyutils, or insecure-file (a plain file;
    /// only if you accept that anyone who can read your files can use your sessions).
    #[arg(long, global = true, env = "LATCHKEY_KEYCHAIN", default_value = "auto")]
    keychain: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in through the browser (RFC 8252 loopback redirect with PKCE).
    Login {
        /// The authorization server.
        #[arg(long, env = "LATCHKEY_ISSUER", default_value = "http://127.0.0.1:7878")]
        issuer: String,
        #[arg(long, default_value = "latchkey-desktop")]
        client_id: String,
        #[arg(long, default_value = "openid profile email offline_access account")]
        scope: String,
        /// Print the sign-in address instead of opening the browser.
        #[arg(long)]
        no_browser: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// The name this device has in your session list [default: the host name].
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Accounts, the keychain in use, and token expiry.
    Status,
    /// Print a valid access token (refreshing it if needed), for scripts.
    ///
    /// A token bound to this device (DPoP) is only accepted with a proof made for one request:
    /// `--request GET URL` prints both headers, e.g. `curl -H @<(latchkey token --request GET "$URL") "$URL"`.
    Token {
        /// Print the Authorization (and DPoP proof) headers for one request instead.
        #[arg(long, num_args = 2, value_names = ["METHOD", "URL"])]
        request: Option<Vec<String>>,
    },
    /// This account's sessions, by device.
    Sessions {
        /// Only sessions in this state.
        #[arg(long, value_parser = session_state())]
        state: Option<SessionState>,
        /// Only suspicious sessions.
        #[arg(long)]
        suspicious: bool,
    },
    /// Revoke a session, or every session but this one.
    Revoke {
        /// The session id (from `latchkey sessions`).
        #[arg(required_unless_present = "others", conflicts_with = "others")]
        id: Option<SessionId>,
        /// Sign out every other device.
        #[arg(long)]
        others: bool,
    },
    /// A session's rotation chain: every refresh token it had, and what happened to each.
    Family { id: SessionId },
    /// "This was me": clear a session's suspicion signals.
    Acknowledge { id: SessionId },
    /// List accounts.
    Accounts,
    /// Make another account current.
    Switch { account: String },
    /// Remove an account and its tokens from this device (without telling the server).
    Forget { account: String },
    /// Sign out: revoke the session at the server and delete its tokens here.
    Logout,
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "latchkey",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `active`, `revoked` or `expired`, listed in `--help`.
fn session_state() -> impl clap::builder::TypedValueParser<Value = SessionState> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(SessionState::ALL.iter().map(|s| s.as_str()))
        .map(|name| name.parse::<SessionState>().unwrap_or(SessionState::Active))
}

fn out(json_mode: bool, value: &impl Serialize, text: impl FnOnce() -> String) {
    let mut stdout = std::io::stdout().lock();
    let printed = if json_mode {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        text()
    };
    let _ = writeln!(stdout, "{printed}");
}

async fn run(cli: Cli) -> Result<(), Error> {
    let paths = Paths::from_env()?;
    let choice: Choice = cli.keychain.parse()?;
    let account = cli.account.as_deref();
    // Commands that store or report the keychain probe it; the others use the account's own.
    let client = match cli.command {
        Command::Login { .. } | Command::Status => Latchkey::open(paths, choice)?,
        _ => Latchkey::open_existing(paths, choice, account)?,
    };
    let j = cli.json;
    match cli.command {
        Command::Login {
            issuer,
            client_id,
            scope,
            no_browser,
            timeout,
            device_name,
        } => {
            let mut device = Device::this_machine("latchkey CLI", env!("CARGO_PKG_VERSION"));
            if let Some(name) = device_name {
                device.name = name;
            }
            let browser: &dyn Browser = if no_browser {
                &PrintUrl
            } else {
                &SystemBrowser
            };
            if !no_browser && !j {
                eprintln!("Opening your browser to sign in to {issuer} … (Ctrl-C cancels)");
            }
            let profile = client
                .login(
                    LoginOptions {
                        issuer: &issuer,
                        client_id: &client_id,
                        scope: &scope,
                        device,
                        browser,
                        timeout: Duration::from_secs(timeout),
                    },
                    async {
                        let _ = tokio::signal::ctrl_c().await;
                    },
                )
                .await?;
            let backend = client.backend();
            out(
                j,
                &json!({ "account": profile.id, "label": profile.label, "issuer": profile.issuer,
                         "keychain": backend, "keychain_persists": backend.persists() }),
                || {
                    format!(
                        "Signed in as {} at {}.\nThe refresh token is in the {}{}.",
                        profile.label,
                        profile.issuer,
                        backend.describe(),
                        if backend.persists() {
                            ""
                        } else {
                            " (it does not survive logout)"
                        }
                    )
                },
            );
        }
        Command::Status => {
            let accounts = client.status()?;
            let backend = client.backend();
            let value = json!({ "keychain": backend, "keychain_description": backend.describe(),
                                "keychain_persists": backend.persists(), "accounts": accounts });
            out(j, &value, || {
                let mut s = format!(
                    "Keychain: {}{}\n",
                    backend.describe(),
                    if backend.persists() {
                        ", persistent"
                    } else {
                        ", NOT persistent: tokens are lost when you log out"
                    }
                );
                if accounts.is_empty() {
                    s.push_str("No accounts. Sign in with `latchkey login --issuer URL`.");
                }
                for a in &accounts {
                    let mark = if a.current { "*" } else { " " };
                    let state = match &a.token {
                        TokenState::SignedIn {
                            access_expires_at,
                            device_key,
                        } => {
                            let left = access_expires_at.map(|exp| exp - client.now().secs());
                            let access = match left {
                                Some(left) if left > 0 => {
                                    format!("; access token valid for {} more", human_secs(left))
                                }
                                Some(_) => "; access token expired (refreshed on next use)".into(),
                                None => String::new(),
                            };
                            let binding = match device_key {
                                Some(jkt) => format!(
                                    "\n    bound to this device (DPoP key {}…): a copied refresh token is useless without it",
                                    &jkt[..jkt.len().min(12)]
                                ),
                                None => "\n    bearer session: not bound to a device key".into(),
                            };
                            format!("signed in{access}{binding}")
                        }
                        TokenState::SignedOut { reason, .. } => format!("SIGNED OUT: {reason}"),
                        TokenState::NoToken => "no token in the keychain: sign in again".into(),
                    };
                    s.push_str(&format!(
                        "{mark} {}  {}  ({})\n    {state}\n",
                        a.label, a.issuer, a.id
                    ));
                }
                s.trim_end().to_string()
            });
        }
        Command::Token { request: None } => {
            let (_, token, exp) = client.access_token(account).await?;
            out(
                j,
                &json!({ "access_token": token.expose(), "expires_at": exp }),
                || token.expose().clone(),
            );
        }
        Command::Token {
            request: Some(request),
        } => {
            let [method, url] = &request[..] else {
                unreachable!("clap takes exactly two values")
            };
            let headers = client
                .request_headers(account, &method.to_ascii_uppercase(), url)
                .await?;
            let map: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.expose().clone())))
                .collect();
            out(j, &json!({ "headers": map }), || {
                headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.expose()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Sessions { state, suspicious } => {
            let query = SessionQuery {
                state,
                suspicious: suspicious.then_some(true),
                limit: Some(200),
                ..SessionQuery::default()
            };
            let list = client.sessions(account, &query).await?;
            out(j, &list, || sessions_text(&list));
        }
        Command::Revoke { id, others } => {
            if others {
                let done = client.revoke_others(account).await?;
                out(j, &done, || {
                    let n = done.revoked.len();
                    format!(
                        "Signed out {n} other session{}.",
                        if n == 1 { "" } else { "s" }
                    )
                });
            } else {
                let id = id.expect("clap requires an id without --others");
                let session = client.revoke_session(account, &id).await?;
                out(j, &session, || format!("Revoked session {id}."));
            }
        }
        Command::Family { id } => {
            let query = ChainQuery {
                limit: Some(200),
                ..ChainQuery::default()
            };
            let family = client.family(account, &id, &query).await?;
            out(j, &family, || family_text(&family));
        }
        Command::Acknowledge { id } => {
            let session = client.acknowledge(account, &id).await?;
            out(j, &session, || {
                format!("Cleared the signals of session {id}.")
            });
        }
        Command::Accounts => {
            let profiles = client.profiles()?;
            let value = serde_json::to_value(&profiles).unwrap_or(Value::Null);
            out(j, &value, || {
                if profiles.accounts.is_empty() {
                    return "No accounts.".into();
                }
                profiles
                    .accounts
                    .iter()
                    .map(|p| {
                        let mark = if profiles.current.as_deref() == Some(p.id.as_str()) {
                            "*"
                        } else {
                            " "
                        };
                        let out = if p.signed_out.is_some() {
                            "  (signed out)"
                        } else {
                            ""
                        };
                        format!(
                            "{mark} {}  {}  {}  ({}){out}",
                            p.label, p.issuer, p.client_id, p.id
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Switch { account } => {
            let p = client.switch(&account)?;
            out(j, &json!({ "current": p.id, "label": p.label }), || {
                format!("Now using {} at {}.", p.label, p.issuer)
            });
        }
        Command::Forget { account } => {
            let p = client.forget(&account)?;
            out(j, &json!({ "forgotten": p.id }), || {
                format!(
                    "Forgot {} at {} (the server was not told; use `logout` for that).",
                    p.label, p.issuer
                )
            });
        }
        Command::Logout => {
            let profile = client.profile(account)?;
            let revoked = client.logout(account).await;
            let confirmed = matches!(revoked, Ok(true));
            out(
                j,
                &json!({ "account": profile.id, "revoked_at_server": confirmed }),
                || {
                    match &revoked {
                    Ok(true) => format!("Signed out {}: the server revoked the session and the token is deleted here.", profile.label),
                    Ok(false) => format!("Signed out {} here; the server offers no revocation endpoint.", profile.label),
                    Err(e) => format!("Signed out {} here, but the server could not be told ({e}).", profile.label),
                }
                },
            );
        }
        Command::Completions { .. } => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 90 => format!("{s} s"),
        s if s < 5400 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// A time as `2026-11-29 16:40:04` (UTC).
fn when(t: Timestamp) -> String {
    t.rfc3339().replace('T', " ").chars().take(19).collect()
}

fn sessions_text(list: &SessionList) -> String {
    let mut s = String::new();
    for group in &list.devices {
        let name = group.device.name.as_deref().unwrap_or("unnamed device");
        let platform = group
            .device
            .platform
            .as_deref()
            .unwrap_or("unknown platform");
        let this = if group.current {
            "  ← this device"
        } else {
            ""
        };
        s.push_str(&format!("{name} ({platform}){this}\n"));
        for session in &group.sessions {
            let mark = if session.current { "*" } else { " " };
            let why = session
                .revoked
                .as_ref()
                .and_then(|r| r.reason.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let bound = if session.key_thumbprint.is_some() {
                ", key-bound"
            } else {
                ""
            };
            s.push_str(&format!(
                "  {mark} {}  {}  {}{why}{bound}  last used {} from {}\n",
                session.id,
                session.app,
                session.state,
                when(session.last_used_at),
                session.last_seen.ip.as_deref().unwrap_or("?"),
            ));
            for signal in &session.signals {
                s.push_str(&format!(
                    "      ! {}: {}\n",
                    signal.severity, signal.summary
                ));
            }
        }
    }
    if s.is_empty() {
        return "No sessions.".into();
    }
    s.push_str(&format!("{} session(s); * marks this one.", list.total));
    s
}

fn family_text(family: &Family) -> String {
    let session = &family.session;
    let mut s = format!(
        "Session {} on {} ({}), {}\n",
        session.id,
        session.device.name.as_deref().unwrap_or("unnamed device"),
        session.app,
        session.state,
    );
    for g in &family.generations {
        let used = match g.used_at {
            Some(at) => format!(
                ", used {} from {}",
                when(at),
                g.used_by
                    .as_ref()
                    .and_then(|p| p.ip.as_deref())
                    .unwrap_or("?")
            ),
            None => String::new(),
        };
        s.push_str(&format!(
            "  gen {:>4}  {:<8} issued {} to {}{used}{}\n",
            g.generation,
            g.state.as_str(),
            when(g.issued_at),
            g.issued_to.ip.as_deref().unwrap_or("?"),
            g.retired_reason
                .as_deref()
                .map(|r| format!("  [{r}]"))
                .unwrap_or_default(),
        ));
        for e in &g.events {
            s.push_str(&format!("        ! {}\n", e.summary));
        }
    }
    s.trim_end().to_string()
}
