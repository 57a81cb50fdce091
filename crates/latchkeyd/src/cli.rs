//! The `latchkeyd` command line: serve, and manage users, clients and signing keys.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use rand::Rng;

use crate::clock::{Clock, SystemClock};
use crate::config::{LogFormat, Settings, SigningAlg};
use crate::server::{self, Server};
use crate::store::audit::Actor;
use crate::store::clients::{self, ClientKind, GrantType};
use crate::store::users::{self, Role};

#[derive(Debug, Parser)]
#[command(
    name = "latchkeyd",
    version,
    about = "Latchkey's OAuth 2.1 / OpenID Connect authorization server",
    long_about = "Latchkey's OAuth 2.1 / OpenID Connect authorization server: short-lived JWT access tokens and refresh tokens that rotate on every use, in families that die when a retired token is replayed.\n\nSettings come from built-in defaults, then the config file, then LATCHKEY_* environment variables, then flags."
)]
pub struct Cli {
    /// TOML config file.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default: in the XDG data dir) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "LATCHKEY_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// File holding the master key that encrypts signing keys (LATCHKEY_MASTER_KEY overrides).
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_MASTER_KEY_FILE",
        value_name = "FILE"
    )]
    master_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check or export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the keyed chain; fails if any record was edited, inserted or removed, or if a
    /// checkpoint's record is gone or differs.
    Verify {
        /// A file of signed checkpoints (`audit.checkpoint_file`, the server's log lines, or
        /// `audit checkpoint` output), kept where the database's users cannot write; repeat
        /// for several.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
    },
    /// Print a signed checkpoint of the log as it is now (one JSON line), to keep elsewhere.
    Checkpoint,
    /// Print records as JSON lines, oldest first.
    Export {
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: i64,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Public URL of this server, the `iss` of its tokens [default: http://<listen>].
    #[arg(long, env = "LATCHKEY_ISSUER", value_name = "URL")]
    issuer: Option<String>,
    /// Log format.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Serve Prometheus metrics on this address (for the monitoring network only).
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Take each client's address from X-Forwarded-For (its last hop): only when a reverse
    /// proxy you run sets it and nothing else can reach latchkeyd.
    #[arg(long, env = "LATCHKEY_TRUST_FORWARDED_FOR", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true")]
    trust_forwarded_for: Option<bool>,
    /// Create (or reset) the demo accounts demo@latchkey.local and support@latchkey.local
    /// (support role) and print their passwords.
    #[arg(long)]
    demo: bool,
}

/// `user` or `support`, listed in `--help`.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Role::ALL.iter().map(|r| r.as_str()))
        .map(|name| name.parse::<Role>().unwrap_or(Role::User))
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Add {
        email: String,
        #[arg(long, default_value = "user", value_parser = role_parser())]
        role: Role,
        /// Display name [default: the part of the email before @].
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (first line), so it never lands in shell history.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account: every session of it is signed out at once and it cannot sign in
    /// until enabled again.
    Disable { email: String },
    /// Enable a disabled account (its old sessions stay signed out).
    Enable { email: String },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Add {
        client_id: String,
        /// Name shown on the sign-in page.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "public")]
        kind: ClientKind,
        /// Allowed redirect URI (repeat for several); needed by a client that signs users in.
        /// Loopback IPs accept any port.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A grant the client may use (repeat for several) [default: authorization_code].
        /// client_credentials makes a service account: a confidential client that signs in as
        /// itself, for the service scopes (ssf, global_token_revocation). device_code lets an
        /// app on a device without a usable browser sign users in with a code (RFC 8628).
        #[arg(long = "grant", value_enum, value_name = "GRANT")]
        grants: Vec<GrantType>,
        /// A scope the client may ask for (repeat, or separate with spaces)
        /// [default: openid profile email offline_access for a client that signs users in].
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// An app you run yourself: it may then be registered for `account` (the user's own
        /// devices and sessions) and `support` (other people's, for support staff).
        #[arg(long)]
        first_party: bool,
        /// Print the registration as JSON: {"client_id", "client_secret", …}. The secret is
        /// shown this once.
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List,
    /// Remove a client.
    Remove { client_id: String },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key and retire the current one (kept in the JWKS until its tokens expire).
    Rotate {
        #[arg(long, value_enum)]
        alg: Option<SigningAlg>,
    },
    /// List signing keys.
    List,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkeyd: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkeyd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(db) = &cli.database {
        settings.database = Some(db.clone());
    }
    if let Some(file) = &cli.master_key_file {
        settings.master_key_file = Some(file.clone());
    }
    Ok(settings)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = settings(&cli)?;
    let clock = SystemClock;
    match cli.command {
        Command::Serve(args) => {
            if let Some(listen) = args.listen {
                settings.listen = listen;
            }
            if let Some(issuer) = args.issuer {
                settings.issuer = Some(issuer);
            }
            if let Some(format) = args.log_format {
                settings.log_format = format;
            }
            if let Some(at) = args.metrics_listen {
                settings.metrics_listen = Some(at);
            }
            if let Some(trust) = args.trust_forwarded_for {
                settings.trust_forwarded_for = trust;
            }
            init_logging(settings.log_format);
            if args.demo && !serves_this_machine_only(&settings) {
                bail!(
                    "--demo creates accounts with printed passwords (one of them support staff): it is for trying Latchkey on this machine, so it needs a loopback listen address and issuer (like --listen 127.0.0.1:7878)"
                );
            }
            let database = crate::db::redact_url(&settings.database_url());
            let server = Server::bind(settings, Arc::new(clock)).await?;
            println!("latchkeyd is running at {}", server.issuer());
            println!("  listening on  {}", server.local_addr());
            println!("  database      {database}");
            if let Some(at) = server.metrics_addr() {
                println!("  metrics       http://{at}/metrics");
            }
            println!(
                "  discovery     {}/.well-known/openid-configuration",
                server.issuer()
            );
            if args.demo {
                let password =
                    demo_account(server.db(), DEMO_EMAIL, Role::User, clock.now_ms()).await?;
                let staff = demo_account(
                    server.db(),
                    DEMO_SUPPORT_EMAIL,
                    Role::Support,
                    clock.now_ms(),
                )
                .await?;
                println!();
                println!("Demo accounts (for trying Latchkey on this machine):");
                println!("  user          {DEMO_EMAIL}  password {password}");
                println!("  support staff {DEMO_SUPPORT_EMAIL}  password {staff}");
            }
            tracing::info!(issuer = server.issuer(), "latchkeyd started");
            server.run(server::shutdown_signal()).await
        }
        Command::User(cmd) => {
            let (db, _) = server::open_audited_db(&settings).await?;
            let operator = operator();
            match cmd {
                UserCommand::Add {
                    email,
                    role,
                    name,
                    password_stdin: _,
                } => {
                    let password = read_password()?;
                    let user = users::add(
                        &db,
                        &email,
                        name.as_deref(),
                        role,
                        &password,
                        Actor::Operator(&operator),
                        clock.now_ms(),
                    )
                    .await?;
                    println!(
                        "created {} {} ({})",
                        user.role.as_str(),
                        user.email,
                        user.id
                    );
                }
                UserCommand::List => {
                    for u in users::list(&db).await? {
                        let state = if u.disabled { "disabled" } else { "" };
                        println!(
                            "{:<38} {:<8} {:<40} {state}",
                            u.id,
                            u.role.as_str(),
                            u.email
                        );
                    }
                }
                UserCommand::Disable { email } => {
                    let revoked = users::set_disabled(
                        &db,
                        &email,
                        true,
                        Actor::Operator(&operator),
                        clock.now_ms(),
                    )
                    .await?;
                    println!("disabled {email}: {} session(s) signed out", revoked.len());
                }
                UserCommand::Enable { email } => {
                    users::set_disabled(
                        &db,
                        &email,
                        false,
                        Actor::Operator(&operator),
                        clock.now_ms(),
                    )
                    .await?;
                    println!("enabled {email}: it can sign in again");
                }
            }
            Ok(())
        }
        Command::Client(cmd) => {
            let (db, _) = server::open_audited_db(&settings).await?;
            clients::ensure_builtin(&db, clock.now_ms()).await?;
            let operator = operator();
            match cmd {
                ClientCommand::Add {
                    client_id,
                    name,
                    kind,
                    redirect_uris,
                    grants,
                    scopes,
                    first_party,
                    json,
                } => {
                    let new = clients::NewClient {
                        client_id: &client_id,
                        name: &name,
                        kind,
                        redirect_uris: &redirect_uris,
                        grant_types: &grants,
                        scopes: &scopes,
                        first_party,
                    };
                    let secret =
                        clients::add(&db, &new, Actor::Operator(&operator), clock.now_ms()).await?;
                    let client = clients::find(&db, &client_id).await?.ok_or_else(|| {
                        anyhow::anyhow!("client {client_id} is gone right after it was added")
                    })?;
                    let grant_names: Vec<&str> =
                        client.grant_types.iter().map(|g| g.as_str()).collect();
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "client_id": client.client_id,
                                "client_secret": secret.as_ref().map(|s| s.expose()),
                                "kind": client.kind.as_str(),
                                "grant_types": grant_names,
                                "scopes": client.scopes,
                                "redirect_uris": client.redirect_uris,
                            })
                        );
                        return Ok(());
                    }
                    println!(
                        "registered {} client {client_id} for the grants: {}; the scopes: {}",
                        kind.as_str(),
                        grant_names.join(" "),
                        client.scopes.join(" ")
                    );
                    if let Some(secret) = secret {
                        println!(
                            "client secret (shown once, store it now): {}",
                            secret.expose()
                        );
                    }
                }
                ClientCommand::List => {
                    println!(
                        "{:<24} {:<12} {:<12} {:<38} {:<52} REDIRECT URIS",
                        "CLIENT", "KIND", "PARTY", "GRANTS", "SCOPES"
                    );
                    for c in clients::list(&db).await? {
                        let party = match (c.builtin, c.first_party) {
                            (true, _) => "built in",
                            (false, true) => "first",
                            (false, false) => "third",
                        };
                        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                        println!(
                            "{:<24} {:<12} {:<12} {:<38} {:<52} {}",
                            c.client_id,
                            c.kind.as_str(),
                            party,
                            grants.join(" "),
                            c.scopes.join(" "),
                            c.redirect_uris.join(" ")
                        );
                    }
                }
                ClientCommand::Remove { client_id } => {
                    let revoked = clients::remove(
                        &db,
                        &client_id,
                        Actor::Operator(&operator),
                        clock.now_ms(),
                    )
                    .await?;
                    println!(
                        "removed client {client_id}: {} session(s) signed out",
                        revoked.len()
                    );
                }
            }
            Ok(())
        }
        Command::Audit(cmd) => {
            let (db, master) = server::open_audited_db(&settings).await?;
            match cmd {
                AuditCommand::Verify { checkpoints } => {
                    verify_audit(&db, &master, &checkpoints).await?
                }
                AuditCommand::Checkpoint => {
                    let t = &settings.tokens;
                    let publish = crate::clock::secs(t.access_token_ttl_secs + 300);
                    let keys = crate::keys::KeyRing::load(
                        db.clone(),
                        master,
                        t.signing_alg,
                        publish,
                        clock.now_ms(),
                    )
                    .await?;
                    let issuer = settings
                        .issuer
                        .clone()
                        .unwrap_or_else(|| format!("http://{}", settings.listen));
                    let cp = crate::checkpoint::take(&db, &keys, &issuer, clock.now_ms()).await?;
                    println!("{}", cp.line());
                }
                AuditCommand::Export { after } => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    crate::store::audit::export(&db, after, |record| {
                        serde_json::to_writer(&mut out, record)?;
                        std::io::Write::write_all(&mut out, b"\n")
                    })
                    .await?;
                    std::io::Write::flush(&mut out)?;
                }
            }
            Ok(())
        }
        Command::Keys(cmd) => {
            let (db, master) = server::open_audited_db(&settings).await?;
            match cmd {
                KeysCommand::Rotate { alg } => {
                    let alg = alg.unwrap_or(settings.tokens.signing_alg);
                    let delay = settings.tokens.key_activation_delay_secs;
                    let key = crate::keys::rotate(
                        &db,
                        &master,
                        alg,
                        clock.now_ms(),
                        crate::clock::secs(delay),
                        Actor::Operator(&operator()),
                    )
                    .await?;
                    println!(
                        "new signing key {} ({}): published now, signs new tokens in {delay} s \
                         (running servers reload keys every {} s)",
                        key.kid, key.alg, settings.upkeep_interval_secs
                    );
                }
                KeysCommand::List => {
                    for k in crate::keys::list(&db, clock.now_ms()).await? {
                        println!("{:<28} {:<6} {}", k.kid, k.alg, k.state);
                    }
                }
            }
            Ok(())
        }
    }
}

async fn verify_audit(
    db: &crate::db::Db,
    master: &crate::crypto::MasterKey,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    use crate::store::audit::{self, ChainKey, Verdict};
    let mut anchors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the checkpoint file {}", file.display()))?;
        let found = crate::checkpoint::read(db, master, &file.display().to_string(), &text).await?;
        if found.is_empty() {
            bail!("{} holds no checkpoint", file.display());
        }
        anchors.extend(found);
    }
    match audit::verify(db, &ChainKey::derive(master), &anchors).await? {
        Verdict::Broken { seq, problem } => {
            bail!("audit log tampered with at record {seq}: {problem}")
        }
        Verdict::Intact {
            records,
            head,
            unkeyed,
            anchors,
            newest_anchor,
        } => {
            println!("audit log intact: {records} records, head {head}");
            match newest_anchor {
                Some(a) => {
                    println!(
                        "  matches {anchors} checkpoint(s); the newest ({}, {}) covers records 1-{}",
                        a.source,
                        crate::clock::rfc3339::format(a.at),
                        a.records
                    );
                    if records > a.records {
                        println!(
                            "  records {}-{records} are protected by the keyed chain alone: a cut-off tail there would not show",
                            a.records + 1
                        );
                    }
                }
                None => println!(
                    "  no checkpoint given: a cut-off tail, or the whole database replaced by an older copy, would not show (--checkpoint FILE)"
                ),
            }
            if unkeyed > 0 {
                println!(
                    "  records 1-{unkeyed} were written before the chain was keyed: only a checkpoint covering them shows whether they were rewritten"
                );
            }
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input.lines().next().unwrap_or_default().to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input (try: printf '%s' \"$PASSWORD\" | latchkeyd user add …)"
        );
    }
    Ok(password)
}

/// Who runs this command, as the audit log names an operator: their login name.
fn operator() -> String {
    ["LOGNAME", "USER", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect())
        .unwrap_or_else(|| "unknown".into())
}

/// Is the server reachable from this machine only: a loopback listen address and, if one is
/// set, a loopback issuer?
fn serves_this_machine_only(settings: &Settings) -> bool {
    let issuer_local = settings.issuer.as_deref().is_none_or(|issuer| {
        url::Url::parse(issuer).is_ok_and(|u| match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        })
    });
    settings.listen.ip().is_loopback() && issuer_local
}

pub const DEMO_EMAIL: &str = "demo@latchkey.local";
pub const DEMO_SUPPORT_EMAIL: &str = "support@latchkey.local";

/// Creates a demo account, or gives it a fresh password, and returns the password.
async fn demo_account(
    db: &crate::db::Db,
    email: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let password: String = (0..3)
        .map(|_| {
            (0..4)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-");
    let by = Actor::Operator("serve --demo");
    if users::find_by_email(db, email).await?.is_some() {
        users::set_password(db, email, &password, by, now).await?;
    } else {
        let name = match role {
            Role::User => "Demo User",
            Role::Support => "Demo Support",
        };
        users::add(db, email, Some(name), role, &password, by, now).await?;
    }
    Ok(password)
}
