//! The window's commands: each validates its input, calls the client core, and returns a view.
//! None returns a token: the access token leaves only as decoded claims (`token_info`).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey_client::browser::SystemBrowser;
use latchkey_client::login::Device;
use latchkey_client::proto::{
    AdminEventQuery, AuditPage, AuditQuery, ChainQuery, EventList, Family, Profile, ReasonBody,
    Revoked, SessionId, SessionList, SessionQuery, SessionState, SessionView, UserId, UserList,
    UserQuery, UserSessions,
};
use latchkey_client::{AccountStatus, CodeLoginOptions, Error, Latchkey, LoginOptions, TokenState};
use serde::Serialize;
use serde_json::{json, Value};
use tauri::{AppHandle, Emitter, Runtime, State};
use ts_rs::TS;

use crate::{watcher, Desktop};

/// An error as the window sees it: a stable code and a message for people.
#[derive(Debug, Serialize, TS)]
pub struct CommandError {
    #[ts(
        type = "'not_signed_in' | 'signed_out' | 'keychain' | 'sign_in' | 'unreachable' | 'unsupported' | 'refused' | 'local' | 'invalid_input'"
    )]
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

/// Account, session and user ids are UUIDs or similar: short, plain.
fn id<T: AsRef<str>>(value: T) -> Reply<T> {
    let text = value.as_ref();
    let ok = !text.is_empty()
        && text.len() <= 100
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(value)
        .ok_or_else(|| invalid("that is not a valid id"))
}

/// A staff member's reason, checked here as the server checks it.
fn reason(value: String) -> Reply<ReasonBody> {
    let body = ReasonBody {
        reason: Some(value),
    };
    let reason = body.checked().map_err(invalid)?;
    Ok(ReasonBody {
        reason: Some(reason),
    })
}

/// Whether an account has a usable session here.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    SignedIn,
    /// The server ended the session (`reason` says why).
    SignedOut,
    /// No refresh token in the keychain.
    NoToken,
}

/// An account as the account switcher shows it.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "Account")]
pub struct AccountView {
    pub id: String,
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub current: bool,
    pub state: AccountState,
    pub reason: Option<String>,
    /// Seconds since the Unix epoch.
    #[ts(as = "Option<f64>")]
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
            } => (AccountState::SignedIn, None, access_expires_at, device_key),
            TokenState::SignedOut { reason, .. } => {
                (AccountState::SignedOut, Some(reason), None, None)
            }
            TokenState::NoToken => (AccountState::NoToken, None, None, None),
            TokenState::KeychainUnusable { message, fix } => (
                AccountState::NoToken,
                Some(format!("{message}. To fix it: {fix}")),
                None,
                None,
            ),
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

/// Every account, and where their tokens are kept.
#[derive(Debug, Serialize, TS)]
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

/// The server's address as typed, checked: the issuer to sign in to.
fn issuer_of(typed: &str) -> Reply<String> {
    let issuer = typed.trim().trim_end_matches('/').to_string();
    let parsed = url::Url::parse(&issuer)
        .map_err(|_| invalid("enter the server's address, like https://login.example.com"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the server's address must start with https://"));
    }
    Ok(issuer)
}

/// A sign-in in progress, cancellable by `cancel_sign_in`; once it has stored its account,
/// the watcher follows it and the account is returned as the switcher shows it.
async fn signing_in<R: Runtime>(
    app: &AppHandle<R>,
    state: &State<'_, Desktop>,
    sign_in: impl FnOnce(
        Arc<Latchkey>,
        tokio::sync::oneshot::Receiver<()>,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<latchkey_client::profiles::Profile, Error>,
    >,
) -> Reply<AccountView> {
    let client = client(state)?;
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    *state.sign_in.lock().expect("sign-in lock") = Some(cancel_tx);
    let profile = sign_in(client.clone(), cancel_rx).await;
    state.sign_in.lock().expect("sign-in lock").take();
    let profile = profile?;
    watcher::restart(app);
    client
        .status()?
        .into_iter()
        .find(|a| a.id == profile.id)
        .map(AccountView::from)
        .ok_or_else(|| invalid("the new account was not stored"))
}

fn this_device() -> Device {
    Device::this_machine("Latchkey Desktop", env!("CARGO_PKG_VERSION"))
}

/// Signs in through the system browser; `cancel_sign_in` stops it.
#[tauri::command]
pub async fn add_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    issuer: String,
    client_id: Option<String>,
) -> Reply<AccountView> {
    let issuer = issuer_of(&issuer)?;
    let client_id = client_id.unwrap_or_else(|| "latchkey-desktop".into());
    id(&client_id)?;
    let _ = app.emit("sign-in", json!({ "step": "browser", "issuer": issuer }));
    signing_in(&app, &state, move |client, cancel| {
        Box::pin(async move {
            client
                .login(
                    LoginOptions {
                        issuer: &issuer,
                        client_id: &client_id,
                        scope: crate::SCOPE,
                        device: this_device(),
                        browser: &SystemBrowser,
                        timeout: Duration::from_secs(180),
                    },
                    async {
                        let _ = cancel.await;
                    },
                )
                .await
        })
    })
    .await
}

/// What the window shows while a sign-in with a code waits: where to go, what to enter, and
/// the address with the code in it as a QR code.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CodeShown {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// When the code stops working, in seconds since the Unix epoch.
    #[ts(as = "f64")]
    pub expires_at: i64,
    pub qr: Option<QrPath>,
}

/// A QR code as one SVG path: `d` draws every dark module of a `size`×`size` grid.
#[derive(Debug, Clone, Serialize, TS)]
pub struct QrPath {
    pub size: u32,
    pub d: String,
}

fn qr_path(data: &str) -> Option<QrPath> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let width = code.width();
    let mut d = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            d.push_str(&format!("M{} {}h1v1h-1z", i % width, i / width));
        }
    }
    Some(QrPath {
        size: u32::try_from(width).ok()?,
        d,
    })
}

/// Signs in with a code entered in a browser on another device (RFC 8628), for a computer
/// whose browser cannot be opened or cannot reach it; `shown` receives the code to display,
/// `cancel_sign_in` stops it.
#[tauri::command]
pub async fn add_account_with_code<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Desktop>,
    issuer: String,
    client_id: Option<String>,
    shown: tauri::ipc::Channel<CodeShown>,
) -> Reply<AccountView> {
    let issuer = issuer_of(&issuer)?;
    let client_id = client_id.unwrap_or_else(|| "latchkey-desktop".into());
    id(&client_id)?;
    signing_in(&app, &state, move |client, cancel| {
        Box::pin(async move {
            let now = client.now().secs();
            client
                .login_with_code(
                    CodeLoginOptions {
                        issuer: &issuer,
                        client_id: &client_id,
                        scope: crate::SCOPE,
                        device: this_device(),
                        timeout: None,
                    },
                    |code| {
                        let expires_in = i64::try_from(code.expires_in.as_secs()).unwrap_or(0);
                        let _ = shown.send(CodeShown {
                            user_code: code.user_code.clone(),
                            verification_uri: code.verification_uri.clone(),
                            qr: code.verification_uri_complete.as_deref().and_then(qr_path),
                            verification_uri_complete: code.verification_uri_complete.clone(),
                            expires_at: now + expires_in,
                        });
                    },
                    async {
                        let _ = cancel.await;
                    },
                )
                .await
        })
    })
    .await
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

/// The signed-in user (with their role, which decides whether Support shows).
#[tauri::command]
pub async fn me(state: State<'_, Desktop>) -> Reply<Profile> {
    Ok(client(&state)?.me(None).await?)
}

/// The filters of the Devices screen.
#[derive(Debug, Clone, Copy, TS)]
#[ts(rename_all = "lowercase")]
pub enum SessionFilter {
    All,
    Active,
    Revoked,
    Expired,
    Suspicious,
}

impl std::str::FromStr for SessionFilter {
    type Err = CommandError;

    fn from_str(name: &str) -> Reply<Self> {
        Ok(match name {
            "all" => Self::All,
            "active" => Self::Active,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            "suspicious" => Self::Suspicious,
            _ => return Err(invalid("unknown filter")),
        })
    }
}

/// The Devices screen's list. `filter` is a [`SessionFilter`], taken as text so that another
/// value gets this app's error shape rather than the IPC layer's.
#[tauri::command]
pub async fn sessions(state: State<'_, Desktop>, filter: String) -> Reply<SessionList> {
    let filter: SessionFilter = filter.parse()?;
    let query = SessionQuery {
        state: match filter {
            SessionFilter::Active => Some(SessionState::Active),
            SessionFilter::Revoked => Some(SessionState::Revoked),
            SessionFilter::Expired => Some(SessionState::Expired),
            SessionFilter::All | SessionFilter::Suspicious => None,
        },
        suspicious: matches!(filter, SessionFilter::Suspicious).then_some(true),
        limit: Some(200),
        ..SessionQuery::default()
    };
    let list = client(&state)?.sessions(None, &query).await?;
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
pub async fn revoke_session(state: State<'_, Desktop>, session: SessionId) -> Reply<SessionView> {
    let session = id(session)?;
    state
        .self_revoked
        .lock()
        .expect("revoked lock")
        .insert(session.clone());
    Ok(client(&state)?.revoke_session(None, &session).await?)
}

#[tauri::command]
pub async fn revoke_other_sessions(state: State<'_, Desktop>) -> Reply<Revoked> {
    let done = client(&state)?.revoke_others(None).await?;
    let mut mine = state.self_revoked.lock().expect("revoked lock");
    mine.extend(done.revoked.iter().cloned());
    Ok(done)
}

/// A page of the family's chain: 100 generations, older ones with `before`.
fn chain_page(before: Option<i64>) -> ChainQuery {
    ChainQuery {
        before,
        limit: Some(100),
    }
}

#[tauri::command]
pub async fn family(
    state: State<'_, Desktop>,
    session: SessionId,
    before: Option<i64>,
) -> Reply<Family> {
    let session = id(session)?;
    Ok(client(&state)?
        .family(None, &session, &chain_page(before))
        .await?)
}

#[tauri::command]
pub async fn acknowledge(state: State<'_, Desktop>, session: SessionId) -> Reply<SessionView> {
    let session = id(session)?;
    Ok(client(&state)?.acknowledge(None, &session).await?)
}

/// The current access token, decoded: header and claims, never the token itself.
#[tauri::command]
pub async fn token_info(state: State<'_, Desktop>) -> Reply<TokenInfo> {
    let (profile, token, expires_at) = client(&state)?.access_token(None).await?;
    let part = |i: usize| -> Option<Value> {
        token
            .expose()
            .split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(Value::is_object)
    };
    let claims = part(1);
    Ok(TokenInfo {
        account: profile.label,
        issuer: profile.issuer,
        format: match claims {
            Some(_) => TokenFormat::Jwt,
            None => TokenFormat::Opaque,
        },
        header: claims.as_ref().and(part(0)),
        claims,
        expires_at,
    })
}

#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    Jwt,
    Opaque,
}

/// The current access token as the Token screen shows it: decoded, never the token itself.
#[derive(Debug, Serialize, TS)]
pub struct TokenInfo {
    pub account: String,
    pub issuer: String,
    pub format: TokenFormat,
    #[ts(type = "Record<string, unknown> | null")]
    pub header: Option<Value>,
    #[ts(type = "Record<string, unknown> | null")]
    pub claims: Option<Value>,
    /// Seconds since the Unix epoch.
    #[ts(as = "f64")]
    pub expires_at: i64,
}

#[tauri::command]
pub async fn admin_search_users(state: State<'_, Desktop>, q: String) -> Reply<UserList> {
    if q.chars().count() > 200 {
        return Err(invalid("the search is too long"));
    }
    let query = UserQuery {
        q: Some(q.trim().to_string()).filter(|q| !q.is_empty()),
        limit: Some(50),
        offset: None,
    };
    Ok(client(&state)?.support_users(None, &query).await?)
}

#[tauri::command]
pub async fn admin_user_sessions(state: State<'_, Desktop>, user: UserId) -> Reply<UserSessions> {
    let user = id(user)?;
    let query = SessionQuery {
        limit: Some(200),
        ..SessionQuery::default()
    };
    Ok(client(&state)?
        .support_user_sessions(None, &user, &query)
        .await?)
}

#[tauri::command]
pub async fn admin_family(state: State<'_, Desktop>, session: SessionId) -> Reply<Family> {
    let session = id(session)?;
    Ok(client(&state)?
        .support_family(None, &session, &chain_page(None))
        .await?)
}

#[tauri::command]
pub async fn admin_events(state: State<'_, Desktop>, user: Option<UserId>) -> Reply<EventList> {
    let query = AdminEventQuery {
        user_id: user.map(id).transpose()?,
        limit: Some(100),
        ..AdminEventQuery::default()
    };
    Ok(client(&state)?.support_events(None, &query).await?)
}

#[tauri::command]
pub async fn admin_revoke_session(
    state: State<'_, Desktop>,
    session: SessionId,
    reason: String,
) -> Reply<SessionView> {
    let session = id(session)?;
    let reason = self::reason(reason)?;
    Ok(client(&state)?
        .support_revoke_session(None, &session, &reason)
        .await?)
}

#[tauri::command]
pub async fn admin_revoke_all(
    state: State<'_, Desktop>,
    user: UserId,
    reason: String,
) -> Reply<Revoked> {
    let user = id(user)?;
    let reason = self::reason(reason)?;
    Ok(client(&state)?
        .support_revoke_all(None, &user, &reason)
        .await?)
}

#[tauri::command]
pub async fn admin_audit(
    state: State<'_, Desktop>,
    user: Option<UserId>,
    action: Option<String>,
    before: Option<i64>,
) -> Reply<AuditPage> {
    if action.as_deref().is_some_and(|a| {
        a.len() > 100
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    }) {
        return Err(invalid("unknown action"));
    }
    let query = AuditQuery {
        target_user_id: user.map(id).transpose()?,
        action: action.filter(|a| !a.is_empty()),
        before,
        limit: Some(50),
        ..AuditQuery::default()
    };
    Ok(client(&state)?.support_audit(None, &query).await?)
}
