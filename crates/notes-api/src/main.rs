//! `notes-api --issuer URL --listen ADDR --client-id ID [--push-url URL | --introspect]`, the
//! client secret in `NOTES_API_CLIENT_SECRET`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use latchkey_guard::{Guard, GuardConfig, Revocations};

/// An example API behind latchkey-guard: each user's notes.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// latchkeyd's issuer URL.
    #[arg(long)]
    issuer: String,
    #[arg(long, default_value = "127.0.0.1:7880")]
    listen: SocketAddr,
    /// The API's service account at latchkeyd (client_credentials, scope ssf); its secret in
    /// NOTES_API_CLIENT_SECRET.
    #[arg(long)]
    client_id: String,
    /// Where the notes are kept (SQLite).
    #[arg(long, default_value = "notes.db")]
    database: String,
    /// Accept only tokens for this audience.
    #[arg(long)]
    audience: Option<String>,
    /// This API's base URL as clients address it, for DPoP proofs (default: http:// + Host).
    #[arg(long)]
    public_url: Option<String>,
    /// Seconds the revocation feed may be out of touch before tokens are refused.
    #[arg(long, default_value_t = 60)]
    max_staleness_secs: u64,
    /// Keep accepting tokens on their JWT alone while the revocation feed is stale.
    #[arg(long)]
    fail_open: bool,
    /// Have latchkeyd push revocations (RFC 8935) to this URL, which must reach this API
    /// (its path is where the events are received), instead of long-polling for them.
    #[arg(long, conflicts_with = "introspect")]
    push_url: Option<String>,
    /// Introspect every token at latchkeyd (RFC 7662) instead of following revocations; the
    /// service account needs the `introspection` scope.
    #[arg(long)]
    introspect: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let secret = std::env::var("NOTES_API_CLIENT_SECRET")
        .context("set NOTES_API_CLIENT_SECRET to the client secret of --client-id")?;
    let mut config = GuardConfig::new(&args.issuer, &args.client_id, &secret);
    config.audience = args.audience;
    config.public_url = args.public_url;
    config.max_staleness = Duration::from_secs(args.max_staleness_secs);
    config.fail_closed = !args.fail_open;
    config.revocations = match (args.push_url, args.introspect) {
        (Some(url), _) => Revocations::Push { url },
        (None, true) => Revocations::Introspect,
        (None, false) => Revocations::Poll,
    };
    // Listening before the guard starts: in push mode latchkeyd delivers at once what waited
    // in the stream, and those connections wait in the backlog until the API serves.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let db = notes_api::Notes::open(&args.database)
        .with_context(|| format!("cannot open the notes database {}", args.database))?;
    let guard = Guard::start(config)
        .await
        .context("cannot start the guard")?;
    println!("notes-api is running at http://{}", listener.local_addr()?);
    let app = notes_api::router(notes_api::AppState { guard, db });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
