//! The window's commands: each validates its input, calls the client core, and returns a view.
//! None returns a token: the access token leaves only as decoded claims (`token_info`).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey_client::browser::SystemBrowser;
use latchkey_client::login::Device;
use latchkey_client::{AccountStatus, Error, Latchkey, LoginOptions, TokenState};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tauri::{AppHandle, Emitter, Runtime, State};

use crate::{watcher, Desktop};

/// An error as the window sees it: a stable code and a message for people.
#[derive(Debug, Serialize)]
pub struct CommandError {
    pub code: &'static str,
    pub message: String,
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotSignedIn(_) => "not_signed_in",
            Error::SignedOut(_) => "signed_out",
            Error::Keychain { .. } => "keychain",
            Error::SignIn(_) => "sign_in",
            Error::Server(_) => "unreachable",
            Error::Unsupported(_) => "unsupported",
            Error::Refused(_) => "refused",
            Error::Io { .. } | Error::Config(_) => "local",
        };
        CommandError {
            code,
            message: e.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> CommandError {
    CommandError {
        code: "invalid_input",
        message: message.into(),
    }
}

type Reply<T> = Result<T, CommandError>;

fn client(state: &State<'_, Desktop>) -> Reply<Arc<Latchkey>> {
    state.client.clone().map_err(|message| CommandError {
        code: "keychain",
        message,
    })
}

/// Session, user and record ids are UUIDs or similar: short, plain.
fn id(value: &str) -> Reply<&str> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(value)
        .ok_or_else(|| invalid("that is not a valid id"))
}

fn reason(value: &str) -> Reply<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 500 {
        return Err(invalid("a reason of 1 to 500 characters is required"));
    }
    Ok(value.to_string())
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub id: String,
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub current: bool,
    /// `signed_in`, `signed_out` or `no_token`.
    pub state: &'static str,
    pub reason: Option<String>,
    pub access_expires_at: Option<i64>,
    /// The thumbprint of the device key the session is bound to (DPoP): its refresh token is
    /// useless on any other machine.
    pub device_key: Option<String>,
}

impl From<AccountStatus> for AccountView {
    fn from(a: AccountStatus) -> Self {
        let (state, reason, access_expires_at, device_key) = match a.token {
            TokenState::SignedIn {
                access_expires_at,
                device_key,
            } => ("signed_in", None, access_expires_at, device_key),
            TokenState::SignedOut { reason, .. } => ("signed_out", Some(reason), None, None),
            TokenState::NoToken => ("no_token", None, None, None),
        };
        AccountView {
            id: a.id,
            label: a.label,
            issuer: a.issuer,
            client_id: a.client_id,
            current: a.current,
            state,
            reason,
            access_expires_at,
            device_key,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Accounts {
    pub accounts: Vec<AccountView>,
    pub keychain: String,
    pub keychain_persists: bool,
}

#[tauri::command]
pub fn accounts(state: State<'_, Desktop>) -> Reply<Accounts> {
    let client = client(&state)?;
    let accounts = client
        .status()?
        .into_iter()
        .map(AccountView::from)
        .collect();
    Ok(Accounts {
        accounts,
        keychain: client.backend().describe().into(),
        keychain_persists: client.backend().persists(),
    })
}

/// Signs in through the system browser; `cancel_sign_in` stops it.
#[tauri::command]
pub async fn add_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    issuer: String,
    client_id: Option<String>,
) -> Reply<AccountView> {
    let issuer = issuer.trim().trim_end_matches('/').to_string();
    let parsed = url::Url::parse(&issuer)
        .map_err(|_| invalid("enter the server's address, like https://login.example.com"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the server's address must start with https://"));
    }
    let client_id = client_id.unwrap_or_else(|| "latchkey-desktop".into());
    id(&client_id)?;
    let client = client(&state)?;
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    *state.sign_in.lock().expect("sign-in lock") = Some(cancel_tx);
    let _ = app.emit("sign-in", json!({ "step": "browser", "issuer": issuer }));
    let profile = client
        .login(
            LoginOptions {
                issuer: &issuer,
                client_id: &client_id,
                scope: crate::SCOPE,
                device: Device::this_machine(env!("CARGO_PKG_VERSION")),
                browser: &SystemBrowser,
                timeout: Duration::from_secs(180),
            },
            async {
                let _ = cancel_rx.await;
            },
        )
        .await?;
    state.sign_in.lock().expect("sign-in lock").take();
    watcher::restart(&app);
    client
        .status()?
        .into_iter()
        .find(|a| a.id == profile.id)
        .map(AccountView::from)
        .ok_or_else(|| invalid("the new account was not stored"))
}

#[tauri::command]
pub fn cancel_sign_in(state: State<'_, Desktop>) {
    if let Some(cancel) = state.sign_in.lock().expect("sign-in lock").take() {
        let _ = cancel.send(());
    }
}

#[tauri::command]
pub fn switch_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    account: String,
) -> Reply<()> {
    client(&state)?.switch(id(&account)?)?;
    watcher::restart(&app);
    Ok(())
}

/// Revokes at the server and deletes the token here; whether the server confirmed.
#[tauri::command]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    account: String,
) -> Reply<bool> {
    let confirmed = client(&state)?.logout(Some(id(&account)?)).await?;
    watcher::restart(&app);
    Ok(confirmed)
}

#[tauri::command]
pub fn forget_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    account: String,
) -> Reply<()> {
    client(&state)?.forget(id(&account)?)?;
    watcher::restart(&app);
    Ok(())
}

async fn api(
    state: &State<'_, Desktop>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply<Value> {
    Ok(client(state)?.api(None, method, path, body).await?)
}

async fn get(state: &State<'_, Desktop>, path: &str) -> Reply<Value> {
    api(state, Method::GET, path, None).await
}

async fn post(state: &State<'_, Desktop>, path: &str, body: Option<Value>) -> Reply<Value> {
    api(state, Method::POST, path, body).await
}

/// The signed-in user (with their role, which decides whether Support shows).
#[tauri::command]
pub async fn me(state: State<'_, Desktop>) -> Reply<Value> {
    get(&state, "/me").await
}

#[tauri::command]
pub async fn sessions(state: State<'_, Desktop>, filter: Option<String>) -> Reply<Value> {
    let filter = match filter.as_deref() {
        None | Some("all") => None,
        Some(f @ ("active" | "revoked" | "expired")) => Some(format!("state={f}")),
        Some("suspicious") => Some("suspicious=true".into()),
        Some(_) => return Err(invalid("unknown filter")),
    };
    let q = filter
        .map(|f| format!("?{f}&limit=200"))
        .unwrap_or_else(|| "?limit=200".into());
    let list = get(&state, &format!("/me/sessions{q}")).await?;
    static FIRST: std::sync::Once = std::sync::Once::new();
    FIRST.call_once(|| {
        if let Some(started) = crate::STARTED.get() {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "first device list served"
            );
        }
    });
    Ok(list)
}

#[tauri::command]
pub async fn revoke_session(state: State<'_, Desktop>, session: String) -> Reply<Value> {
    let session = id(&session)?.to_string();
    state
        .self_revoked
        .lock()
        .expect("revoked lock")
        .insert(session.clone());
    api(
        &state,
        Method::DELETE,
        &format!("/me/sessions/{session}"),
        None,
    )
    .await
}

#[tauri::command]
pub async fn revoke_other_sessions(state: State<'_, Desktop>) -> Reply<Value> {
    let done = post(&state, "/me/sessions/revoke-others", None).await?;
    let mut mine = state.self_revoked.lock().expect("revoked lock");
    for id in done["revoked"].as_array().into_iter().flatten() {
        if let Some(id) = id.as_str() {
            mine.insert(id.to_string());
        }
    }
    Ok(done)
}

#[tauri::command]
pub async fn family(
    state: State<'_, Desktop>,
    session: String,
    before: Option<i64>,
) -> Reply<Value> {
    let q = query(&[
        ("before", before.map(|b| b.to_string())),
        ("limit", Some("100".into())),
    ]);
    get(&state, &format!("/me/sessions/{}/family{q}", id(&session)?)).await
}

#[tauri::command]
pub async fn acknowledge(state: State<'_, Desktop>, session: String) -> Reply<Value> {
    post(
        &state,
        &format!("/me/sessions/{}/acknowledge", id(&session)?),
        None,
    )
    .await
}

/// The current access token, decoded: header and claims, never the token itself.
#[tauri::command]
pub async fn token_info(state: State<'_, Desktop>) -> Reply<Value> {
    let (profile, token, expires_at) = client(&state)?.access_token(None).await?;
    let part = |i: usize| -> Value {
        token
            .expose()
            .split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    Ok(json!({
        "account": profile.label,
        "issuer": profile.issuer,
        "format": if part(1).is_object() { "jwt" } else { "opaque" },
        "header": part(0),
        "claims": part(1),
        "expires_at": expires_at,
    }))
}

#[tauri::command]
pub async fn admin_search_users(state: State<'_, Desktop>, q: String) -> Reply<Value> {
    if q.chars().count() > 200 {
        return Err(invalid("the search is too long"));
    }
    let q = query(&[
        ("q", Some(q.trim().to_string())),
        ("limit", Some("50".into())),
    ]);
    get(&state, &format!("/admin/users{q}")).await
}

#[tauri::command]
pub async fn admin_user_sessions(state: State<'_, Desktop>, user: String) -> Reply<Value> {
    get(
        &state,
        &format!("/admin/users/{}/sessions?limit=200", id(&user)?),
    )
    .await
}

#[tauri::command]
pub async fn admin_family(state: State<'_, Desktop>, session: String) -> Reply<Value> {
    get(
        &state,
        &format!("/admin/sessions/{}/family?limit=100", id(&session)?),
    )
    .await
}

#[tauri::command]
pub async fn admin_events(state: State<'_, Desktop>, user: Option<String>) -> Reply<Value> {
    let user = user.as_deref().map(id).transpose()?.map(str::to_string);
    let q = query(&[("user_id", user), ("limit", Some("100".into()))]);
    get(&state, &format!("/admin/events{q}")).await
}

#[tauri::command]
pub async fn admin_revoke_session(
    state: State<'_, Desktop>,
    session: String,
    reason: String,
) -> Reply<Value> {
    let body = json!({ "reason": self::reason(&reason)? });
    post(
        &state,
        &format!("/admin/sessions/{}/revoke", id(&session)?),
        Some(body),
    )
    .await
}

#[tauri::command]
pub async fn admin_revoke_all(
    state: State<'_, Desktop>,
    user: String,
    reason: String,
) -> Reply<Value> {
    let body = json!({ "reason": self::reason(&reason)? });
    post(
        &state,
        &format!("/admin/users/{}/revoke-all", id(&user)?),
        Some(body),
    )
    .await
}

#[tauri::command]
pub async fn admin_audit(
    state: State<'_, Desktop>,
    user: Option<String>,
    action: Option<String>,
    before: Option<i64>,
) -> Reply<Value> {
    let user = user.as_deref().map(id).transpose()?.map(str::to_string);
    if action.as_deref().is_some_and(|a| {
        a.len() > 100
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    }) {
        return Err(invalid("unknown action"));
    }
    let q = query(&[
        ("target_user_id", user),
        ("action", action),
        ("before", before.map(|b| b.to_string())),
        ("limit", Some("50".into())),
    ]);
    get(&state, &format!("/admin/audit{q}")).await
}
