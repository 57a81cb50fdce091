//! `notes-api --issuer URL --listen ADDR --client-id ID`, the client secret in
//! `NOTES_API_CLIENT_SECRET`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use latchkey_guard::{Guard, GuardConfig};

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
    let guard = Guard::start(config)
        .await
        .context("cannot start the guard")?;
    let db = notes_api::open(&args.database)
        .await
        .with_context(|| format!("cannot open the notes database {}", args.database))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("notes-api is running at http://{}", listener.local_addr()?);
    let app = notes_api::router(notes_api::AppState { guard, db });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
