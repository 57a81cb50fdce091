//! Latchkey desktop: a thin Tauri shell over the client core (`latchkey-client`) and latchkeyd's
//! account and support APIs. Commands return views, never secrets: the refresh token never
//! leaves the Rust side, and the access token reaches the web view only as decoded claims.

mod commands;
#[cfg(test)]
mod typescript;
mod watcher;

use std::sync::{Arc, Mutex};

use latchkey_client::keychain::Choice;
use latchkey_client::paths::Paths;
use latchkey_client::Latchkey;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{Manager, RunEvent};

/// What the app asks for at sign-in: the account API for everyone, and the support API, which
/// the server grants only when a support-staff account signs in.
pub const SCOPE: &str = "openid profile email offline_access account support";

/// What every command shares, through `tauri::State`.
pub struct Desktop {
    /// The client, or why it could not start (no keychain): the window shows the fix.
    pub client: Result<Arc<Latchkey>, String>,
    /// Cancels the sign-in in progress.
    pub sign_in: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Stops the live event watcher (dropped or sent) when the current account changes.
    pub watcher: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Sessions this window revoked itself: their revocation needs no notification.
    pub self_revoked: Mutex<std::collections::HashSet<latchkey_client::proto::SessionId>>,
}

impl Desktop {
    pub fn open() -> Self {
        let choice = std::env::var("LATCHKEY_KEYCHAIN")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(Choice::Auto);
        Self::with(
            Paths::from_env()
                .and_then(|paths| Latchkey::open(paths, choice))
                .map_err(|e| e.to_string()),
        )
    }

    /// The state around a client (or the reason there is none).
    pub fn with(client: Result<Latchkey, String>) -> Self {
        Self {
            client: client.map(Arc::new),
            sign_in: Mutex::new(None),
            watcher: Mutex::new(None),
            self_revoked: Mutex::new(Default::default()),
        }
    }
}

/// The builder with every command and plugin, shared by the app and its tests.
pub fn builder<R: tauri::Runtime>(base: tauri::Builder<R>) -> tauri::Builder<R> {
    base.invoke_handler(tauri::generate_handler![
        commands::accounts,
        commands::add_account,
        commands::add_account_with_code,
        commands::cancel_sign_in,
        commands::switch_account,
        commands::sign_out,
        commands::forget_account,
        commands::me,
        commands::sessions,
        commands::revoke_session,
        commands::revoke_other_sessions,
        commands::family,
        commands::acknowledge,
        commands::token_info,
        commands::admin_search_users,
        commands::admin_user_sessions,
        commands::admin_family,
        commands::admin_events,
        commands::admin_revoke_session,
        commands::admin_revoke_all,
        commands::admin_audit,
    ])
}

/// When the process started, for the startup benchmark (`scripts/bench-desktop`).
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

pub fn run() {
    STARTED.get_or_init(std::time::Instant::now);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let app = builder(tauri::Builder::default())
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            // A second launch brings the running window forward instead.
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .manage(Desktop::open())
        .setup(|app| {
            tray(app)?;
            watcher::restart(app.handle());
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("the Latchkey window could not be created");
    app.run(|_app, event| {
        if let RunEvent::ExitRequested { .. } = event {
            tracing::debug!("exiting");
        }
    });
}

/// The tray icon: the account's state at a glance, and a way back to the window.
fn tray(app: &tauri::App) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Show Latchkey", true, None::<&str>)?;
    // One read of the accounts (a keychain look-up each) for the menu line and the tooltip.
    let text = watcher::tray_text(app.handle());
    let state = MenuItem::with_id(app, "state", &text, false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&state, &show, &quit])?;
    let mut tray = TrayIconBuilder::with_id("latchkey")
        .menu(&menu)
        .tooltip(&text)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => {
                if let Some(window) = app.get_webview_window("main") {
                    let _ = window.show();
                    let _ = window.set_focus();
                }
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    app.manage(watcher::TrayState::<tauri::Wry>(Mutex::new(Some(state))));
    Ok(())
}
