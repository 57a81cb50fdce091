//! The live link to latchkeyd: the account's event stream, forwarded to the window as
//! `security-event`, turned into OS notifications, and reflected in the tray. When the server
//! is unreachable the window is told (`connection`) and the watcher retries with backoff.

use std::sync::Mutex;
use std::time::Duration;

use latchkey_client::api::StreamEvent;
use latchkey_client::{Error, TokenState};
use latchkey_proto::{EventKind, SecurityEvent};
use serde_json::json;
use tauri::menu::MenuItem;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::oneshot;

use crate::Desktop;

/// The tray's state line, updated as the account changes.
pub struct TrayState<R: Runtime>(pub Mutex<Option<MenuItem<R>>>);

pub fn tray_text<R: Runtime>(app: &AppHandle<R>) -> String {
    let desktop = app.state::<Desktop>();
    let Ok(client) = &desktop.client else {
        return "Latchkey: no keychain".into();
    };
    match client.status() {
        Ok(accounts) => match accounts.iter().find(|a| a.current) {
            Some(a) => match &a.token {
                TokenState::SignedIn { .. } => format!("Signed in as {}", a.label),
                TokenState::SignedOut { .. } => format!("{}: signed out", a.label),
                TokenState::NoToken => format!("{}: sign in again", a.label),
                TokenState::KeychainUnusable { .. } => format!("{}: keychain unusable", a.label),
            },
            None => "No account".into(),
        },
        Err(_) => "Latchkey".into(),
    }
}

pub fn refresh_tray<R: Runtime>(app: &AppHandle<R>) {
    let text = tray_text(app);
    if let Some(state) = app.try_state::<TrayState<R>>() {
        if let Some(item) = state.0.lock().expect("tray lock").as_ref() {
            let _ = item.set_text(&text);
        }
    }
    if let Some(tray) = app.tray_by_id("latchkey") {
        let _ = tray.set_tooltip(Some(&text));
    }
}

/// (Re)starts the watcher for the current account. The one before stops where stopping loses
/// nothing (see [`watch`]), not where it is told to.
pub fn restart<R: Runtime>(app: &AppHandle<R>) {
    let desktop = app.state::<Desktop>();
    let (stop, stopped) = oneshot::channel();
    // Dropping the old sender tells the old watcher to stop.
    drop(desktop.watcher.lock().expect("watcher lock").replace(stop));
    let handle = app.clone();
    tauri::async_runtime::spawn(async move { watch(handle, stopped).await });
    refresh_tray(app);
}

fn notify<R: Runtime>(app: &AppHandle<R>, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "cannot show a notification");
    }
}

/// Follows the current account's events until `stop` fires (or its sender is dropped).
///
/// Connecting may refresh the account's tokens: the server rotates the refresh token, and the
/// client must store the successor or the family is lost (its next use would be reuse). So a
/// connection attempt is never cut short; the watcher stops only while it waits for an event
/// or for its next attempt.
async fn watch<R: Runtime>(app: AppHandle<R>, mut stop: oneshot::Receiver<()>) {
    let Ok(client) = app.state::<Desktop>().client.clone() else {
        return;
    };
    let stopped = |stop: &mut oneshot::Receiver<()>| {
        !matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty))
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = client.events(None).await;
        if stopped(&mut stop) {
            return;
        }
        match connected {
            Ok(mut stream) => {
                backoff = Duration::from_secs(1);
                let _ = app.emit("connection", json!({ "online": true }));
                loop {
                    let next = tokio::select! {
                        _ = &mut stop => return,
                        next = stream.next() => next,
                    };
                    match next {
                        Ok(Some(StreamEvent::Security(event))) => {
                            let _ = app.emit(
                                "security-event",
                                json!({ "kind": event.kind, "event": event }),
                            );
                            announce(&app, &event);
                        }
                        // Events were skipped: the window reloads what it shows.
                        Ok(Some(StreamEvent::Resync)) => {
                            let _ = app.emit("security-event", json!({ "kind": "resync" }));
                        }
                        // The server ends a stream when its access token expires: reconnect.
                        Ok(Some(StreamEvent::TokenExpired)) | Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "event stream interrupted");
                            break;
                        }
                    }
                }
            }
            Err(Error::SignedOut(reason)) | Err(Error::NotSignedIn(reason)) => {
                let _ = app.emit("account-changed", json!({ "reason": reason }));
                refresh_tray(&app);
                return;
            }
            Err(Error::Unsupported(_)) | Err(Error::Keychain { .. }) => return,
            Err(e) => {
                let _ = app.emit(
                    "connection",
                    json!({ "online": false, "message": e.to_string(), "retry_in": backoff.as_secs() }),
                );
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// An OS notification for what the user should know at once.
fn announce<R: Runtime>(app: &AppHandle<R>, event: &SecurityEvent) {
    if event.kind == EventKind::SessionRevoked {
        let mine = event.session_id.as_ref().is_some_and(|session| {
            app.state::<Desktop>()
                .self_revoked
                .lock()
                .expect("revoked lock")
                .remove(session)
        });
        // A revocation for theft follows its own signal, which is announced already.
        let reason = event.details["reason"].as_str().unwrap_or_default();
        let after_signal = matches!(
            reason,
            "reuse_detected" | "key_mismatch" | "authorization_code_reused"
        ) || reason.starts_with("auto_revoked_");
        if !mine && !after_signal {
            notify(app, "A session was signed out", &event.summary);
        }
        refresh_tray(app);
    } else if event.kind.is_signal() && event.severity.is_alarming() {
        notify(app, "A session looks suspicious", &event.summary);
    }
}
