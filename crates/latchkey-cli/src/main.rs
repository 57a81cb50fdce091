//! `latchkey`: sign in, tokens and sessions from the terminal, on Latchkey's client core.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use latchkey_client::browser::{Browser, PrintUrl, SystemBrowser};
use latchkey_client::keychain::{self, Backend, Choice};
use latchkey_client::login::CodeToEnter;
use latchkey_client::login::Device;
use latchkey_client::paths::Paths;
use latchkey_client::proto::{
    ChainQuery, Family, SessionId, SessionList, SessionQuery, SessionState, Timestamp,
};
use latchkey_client::{AccountStatus, CodeLoginOptions, Error, Latchkey, LoginOptions, TokenState};
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
    /// Sign in through the browser (RFC 8252 loopback redirect with PKCE), or with a code
    /// entered in a browser on another device (`--device`, RFC 8628).
    Login {
        /// The authorization server.
        #[arg(long, env = "LATCHKEY_ISSUER", default_value = "http://127.0.0.1:7878")]
        issuer: String,
        #[arg(long, default_value = "latchkey-desktop")]
        client_id: String,
        #[arg(long, default_value = "openid profile email offline_access account")]
        scope: String,
        /// Print the sign-in address instead of opening the browser (the browser must still
        /// reach this machine's loopback address: on a machine you reach over SSH, use --device).
        #[arg(long, conflicts_with = "device")]
        no_browser: bool,
        /// Sign in with a code: open the address shown in a browser anywhere (your phone, your
        /// laptop) and enter the code there. For machines with no browser of their own.
        #[arg(long)]
        device: bool,
        /// Give up after this many seconds [default: 180; with --device, when the code expires].
        #[arg(long)]
        timeout: Option<u64>,
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

/// `latchkey status` in words: each account with the keychain it lives in, then where new
/// sign-ins would go.
fn status_text(
    accounts: &[AccountStatus],
    for_new: &Result<Backend, Error>,
    now_secs: i64,
) -> String {
    let mut s = String::new();
    if accounts.is_empty() {
        s.push_str("No accounts. Sign in with `latchkey login --issuer URL` (or `--device` on a machine with no browser).\n");
    }
    for a in accounts {
        let mark = if a.current { "*" } else { " " };
        let state = match &a.token {
            TokenState::SignedIn {
                access_expires_at,
                device_key,
            } => {
                let access = match access_expires_at.map(|exp| exp - now_secs) {
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
            TokenState::KeychainUnusable { message, fix } => {
                format!("its keychain cannot be read here: {message}\n    fix: {fix}")
            }
        };
        s.push_str(&format!(
            "{mark} {}  {}  ({})\n    {state}\n    tokens in: {}; {}\n",
            a.label,
            a.issuer,
            a.id,
            a.keychain.describe(),
            a.keychain.lifetime()
        ));
    }
    match for_new {
        Ok(b) => s.push_str(&format!(
            "New sign-ins are stored in: {}; {}",
            b.describe(),
            b.lifetime()
        )),
        Err(e) => s.push_str(&format!("New sign-ins cannot be stored here: {e}")),
    }
    s
}

/// Why no browser can be opened on this machine, if none can: a Linux or BSD session with no
/// display and no `$BROWSER` (an SSH shell, a container, a service).
fn no_browser_here() -> Option<&'static str> {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return None;
    }
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    (!set("DISPLAY") && !set("WAYLAND_DISPLAY") && !set("BROWSER"))
        .then_some("no display (DISPLAY and WAYLAND_DISPLAY are unset) and no BROWSER")
}

/// Tells the person where to go and what to type, on stderr (stdout stays for `--json`); a
/// QR code of the address with the code in it when the terminal is wide enough for one.
fn show_code(code: &CodeToEnter) {
    let mut err = std::io::stderr().lock();
    let minutes = code.expires_in.as_secs().div_ceil(60);
    let _ = writeln!(
        err,
        "To sign in, open this address in a browser on any device:\n\n    {}\n\nand enter the code:\n\n    {}\n",
        code.verification_uri, code.user_code
    );
    if let Some(qr) = code
        .verification_uri_complete
        .as_deref()
        .and_then(qr_for_terminal)
    {
        let _ = writeln!(err, "Or scan this with your phone's camera:\n\n{qr}");
    }
    let _ = writeln!(
        err,
        "Waiting for you to approve it … (the code expires in {minutes} minute{}; Ctrl-C cancels)",
        if minutes == 1 { "" } else { "s" }
    );
}

/// A QR code as terminal text for stderr, if it is a terminal.
fn qr_for_terminal(data: &str) -> Option<String> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (terminal_size::Width(columns), _) = terminal_size::terminal_size_of(std::io::stderr())?;
    qr_text(data, usize::from(columns))
}

/// A QR code as text, two rows of modules to a line; `None` if `columns` are too few to show
/// one that scans.
fn qr_text(data: &str, columns: usize) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    // The code and its quiet zone of 4 modules each side, one column per module.
    if columns < code.width() + 8 {
        return None;
    }
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
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
    // A sign-in probes the keychain it will store in; every other command uses the account's
    // own (`status` reads each account from its own and probes the default apart).
    let client = match cli.command {
        Command::Login { .. } => Latchkey::open(paths.clone(), choice)?,
        _ => Latchkey::open_existing(paths.clone(), choice, account)?,
    };
    let j = cli.json;
    match cli.command {
        Command::Login {
            issuer,
            client_id,
            scope,
            no_browser,
            device: with_code,
            timeout,
            device_name,
        } => {
            let mut device = Device::this_machine("latchkey CLI", env!("CARGO_PKG_VERSION"));
            if let Some(name) = device_name {
                device.name = name;
            }
            let cancel = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let profile = if with_code {
                client
                    .login_with_code(
                        CodeLoginOptions {
                            issuer: &issuer,
                            client_id: &client_id,
                            scope: &scope,
                            device,
                            timeout: timeout.map(Duration::from_secs),
                        },
                        show_code,
                        cancel,
                    )
                    .await?
            } else {
                if !no_browser {
                    if let Some(why) = no_browser_here() {
                        return Err(Error::SignIn(format!(
                            "{why}: there is no browser to sign in with here.\n  \
                             Sign in with a code instead, in a browser on any other device:\n    \
                             latchkey login --device --issuer {issuer}"
                        )));
                    }
                }
                let browser: &dyn Browser = if no_browser {
                    &PrintUrl
                } else {
                    &SystemBrowser
                };
                if !no_browser && !j {
                    eprintln!("Opening your browser to sign in to {issuer} … (Ctrl-C cancels)");
                }
                client
                    .login(
                        LoginOptions {
                            issuer: &issuer,
                            client_id: &client_id,
                            scope: &scope,
                            device,
                            browser,
                            timeout: Duration::from_secs(timeout.unwrap_or(180)),
                        },
                        cancel,
                    )
                    .await?
            };
            let backend = client.backend();
            out(
                j,
                &json!({ "account": profile.id, "label": profile.label, "issuer": profile.issuer,
                         "keychain": backend, "keychain_persists": backend.persists() }),
                || {
                    format!(
                        "Signed in as {} at {}.\nThe refresh token is in the {}; {}.",
                        profile.label,
                        profile.issuer,
                        backend.describe(),
                        backend.lifetime()
                    )
                },
            );
        }
        Command::Status => {
            let accounts = client.status()?;
            // Where a new sign-in would be stored, probed now: a broken one is a line here.
            let for_new = keychain::open(choice, paths.insecure_store()).map(|s| s.backend());
            let value = json!({
                "keychain": for_new.as_ref().ok(),
                "keychain_description": for_new.as_ref().ok().map(|b| b.describe()),
                "keychain_persists": for_new.as_ref().ok().map(|b| b.persists()),
                "keychain_error": for_new.as_ref().err().map(|e| e.to_string()),
                "accounts": accounts,
            });
            out(j, &value, || {
                status_text(&accounts, &for_new, client.now().secs())
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

#[cfg(test)]
mod tests {
    use super::qr_text;

    #[test]
    fn a_qr_code_is_shown_only_where_it_fits() {
        let url = "https://login.example.com/device?user_code=WDJB-MJHT";
        let qr = qr_text(url, 80).expect("fits in 80 columns");
        let lines: Vec<&str> = qr.lines().collect();
        let width = lines[0].chars().count();
        assert!(width <= 80 && lines.iter().all(|l| l.chars().count() == width));
        // Two rows of modules to a line: about as many lines as half the width.
        assert!(
            lines.len() * 2 >= width && lines.len() * 2 <= width + 2,
            "{qr}"
        );
        assert!(qr_text(url, width - 1).is_none());
    }
}
