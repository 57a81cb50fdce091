//! The client: accounts, their tokens in the keychain, and access tokens on demand.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::api::Credential;
use crate::browser::Browser;
use crate::clock::{Clock, SystemClock};
use crate::discovery::{discover, Metadata};
use crate::dpop::{DeviceKey, NonceCache, ProvingClient};
use crate::keychain::{self, Backend, Choice, SecretStore, MAX_SECRET_BYTES};
use crate::lock::AccountLock;
use crate::login::{self, CodeToEnter, Device, GrantError, SignIn, SignInWithCode, Tokens};
use crate::paths::Paths;
use crate::profiles::{Profile, ProfileFile, Profiles, SignedOut};
use crate::{Error, Result, Secret};

/// Refresh when the access token has less than this left.
const REFRESH_AHEAD_SECS: i64 = 60;

/// What one keychain entry holds (as JSON): the refresh token, and the current access token so
/// that `latchkey token` answers without a network round trip.
#[derive(Serialize, Deserialize)]
struct Stored {
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_expires_at: Option<i64>,
    /// The device key (base64 PKCS#8) the session is bound to (DPoP); never leaves this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<String>,
    /// The cached access token was issued bound to that key (`token_type` DPoP), so it is sent
    /// as `DPoP` with a proof; a server may answer a proven refresh with a bearer token.
    #[serde(default)]
    access_bound: bool,
}

/// A usable access token and what it takes to present it.
pub(crate) struct Access {
    pub profile: Profile,
    pub token: Secret<String>,
    pub expires_at: i64,
    /// Present for a DPoP-bound token: every request carries a proof by this key.
    pub key: Option<DeviceKey>,
}

impl Stored {
    fn from_tokens(
        now: i64,
        tokens: &Tokens,
        previous_refresh: Option<&Secret<String>>,
        key: Option<&DeviceKey>,
    ) -> Result<Self> {
        // Servers that do not rotate send no new refresh token: keep the one we have.
        let refresh = tokens
            .refresh_token
            .as_ref()
            .or(previous_refresh)
            .ok_or_else(|| {
                Error::SignIn(
                    "the server issued no refresh token (it may not allow offline_access for this client)"
                        .into(),
                )
            })?;
        Ok(Stored {
            refresh_token: refresh.expose().clone(),
            access_token: Some(tokens.access_token.expose().clone()),
            access_expires_at: Some(
                now + tokens.expires_in.map(|d| d.as_secs() as i64).unwrap_or(300),
            ),
            dpop_key: key.map(|k| k.export().into_inner()),
            access_bound: key.is_some() && tokens.dpop_bound,
        })
    }

    fn key(&self) -> Result<Option<DeviceKey>> {
        self.dpop_key.as_deref().map(DeviceKey::import).transpose()
    }

    /// The key to prove API calls with: only for an access token that is bound to it.
    fn access_key(&self) -> Result<Option<DeviceKey>> {
        match self.access_bound {
            true => self.key(),
            false => Ok(None),
        }
    }

    fn encode(&self) -> Secret<String> {
        let full = serde_json::to_string(self).expect("strings serialize");
        if full.len() <= MAX_SECRET_BYTES {
            return Secret::new(full);
        }
        // A very large access token does not fit Windows' limit: keep only the refresh token.
        let lean = Stored {
            refresh_token: self.refresh_token.clone(),
            access_token: None,
            access_expires_at: None,
            dpop_key: self.dpop_key.clone(),
            access_bound: false,
        };
        Secret::new(serde_json::to_string(&lean).expect("strings serialize"))
    }

    fn decode(secret: &Secret<String>) -> Result<Self> {
        serde_json::from_str(secret.expose())
            .map_err(|_| Error::Config("the keychain entry is damaged; sign in again".into()))
    }

    fn fresh_access(&self, now: i64) -> Option<(Secret<String>, i64)> {
        match (&self.access_token, self.access_expires_at) {
            (Some(token), Some(exp)) if exp - now > REFRESH_AHEAD_SECS => {
                Some((Secret::new(token.clone()), exp))
            }
            _ => None,
        }
    }
}

pub struct LoginOptions<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub device: Device,
    pub browser: &'a dyn Browser,
    pub timeout: Duration,
}

pub struct CodeLoginOptions<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub device: Device,
    /// Give up sooner than the code expires.
    pub timeout: Option<Duration>,
}

/// An account's state as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TokenState {
    /// Signed in; `access_expires_at` is when the cached access token ends (Unix seconds).
    /// `device_key`: the thumbprint of the key the session is bound to (DPoP), if it is.
    SignedIn {
        access_expires_at: Option<i64>,
        device_key: Option<String>,
    },
    /// The server ended the session, or the user logged out.
    SignedOut { reason: String, at: i64 },
    /// The profile exists but its keychain entry does not (removed outside Latchkey).
    NoToken,
    /// The keychain the account lives in cannot be read here now (no Secret Service in this
    /// shell, say); the account itself is untouched.
    KeychainUnusable { message: String, fix: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub id: String,
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub current: bool,
    /// Where its tokens live.
    pub keychain: Backend,
    #[serde(flatten)]
    pub token: TokenState,
}

pub struct Latchkey {
    paths: Paths,
    store: Box<dyn SecretStore>,
    http: reqwest::Client,
    profiles: ProfileFile,
    /// The server's latest DPoP nonce, for the next proof.
    nonces: NonceCache,
    clock: Arc<dyn Clock>,
}

impl Latchkey {
    /// Opens the client: probes the keychain first, so nothing is ever half-stored.
    pub fn open(paths: Paths, keychain: Choice) -> Result<Self> {
        let store = keychain::open(keychain, paths.insecure_store())?;
        Self::with_store(paths, store)
    }

    /// Opens the client for an account that is already stored, without probing the keychain
    /// first (the probe writes, reads and deletes an entry: three round trips `latchkey token`
    /// should not pay). Nothing new is stored through it but the account's own rotations.
    pub fn open_existing(paths: Paths, keychain: Choice, account: Option<&str>) -> Result<Self> {
        let profiles = ProfileFile {
            path: paths.profiles_file(),
        }
        .read()?;
        let remembered = profiles.select(account).ok().and_then(|p| p.keychain);
        let store = keychain::open_unprobed(keychain, paths.insecure_store(), remembered);
        Self::with_store(paths, store)
    }

    fn with_store(paths: Paths, store: Box<dyn SecretStore>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            profiles: ProfileFile {
                path: paths.profiles_file(),
            },
            paths,
            store,
            http,
            nonces: NonceCache::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same client on another clock (tests move time instead of waiting for it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by this client's clock.
    pub fn now(&self) -> latchkey_proto::Timestamp {
        self.clock.now()
    }

    pub(crate) fn nonces(&self) -> &NonceCache {
        &self.nonces
    }

    pub(crate) fn clock_now_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn profiles(&self) -> Result<Profiles> {
        self.profiles.read()
    }

    pub fn profile(&self, account: Option<&str>) -> Result<Profile> {
        Ok(self.profiles.read()?.select(account)?.clone())
    }

    /// Signs in through the browser and stores the new account (tokens first, then profile).
    pub async fn login(
        &self,
        opts: LoginOptions<'_>,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Profile> {
        let meta = discover(&self.http, opts.issuer).await?;
        // A new key for each sign-in: the session it starts is bound to it.
        let key = meta.supports_dpop().then(DeviceKey::generate);
        let tokens = login::sign_in(
            &self.http,
            SignIn {
                meta: &meta,
                client_id: opts.client_id,
                scope: opts.scope,
                device: &opts.device,
                browser: opts.browser,
                timeout: opts.timeout,
                key: key.as_ref(),
                nonces: &self.nonces,
                clock: self.clock.as_ref(),
            },
            cancel,
        )
        .await?;
        self.add_account(meta, opts.client_id, opts.scope, &tokens, key)
            .await
    }

    /// Signs in with a code entered in a browser elsewhere (RFC 8628), for a machine with no
    /// browser of its own; `show` tells the person the code and where to enter it. Stores the
    /// new account as `login` does.
    pub async fn login_with_code(
        &self,
        opts: CodeLoginOptions<'_>,
        show: impl FnOnce(&CodeToEnter),
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<Profile> {
        let meta = discover(&self.http, opts.issuer).await?;
        let key = meta.supports_dpop().then(DeviceKey::generate);
        let tokens = login::sign_in_with_code(
            &self.http,
            SignInWithCode {
                meta: &meta,
                client_id: opts.client_id,
                scope: opts.scope,
                device: &opts.device,
                key: key.as_ref(),
                nonces: &self.nonces,
                clock: self.clock.as_ref(),
                timeout: opts.timeout,
            },
            show,
            cancel,
        )
        .await?;
        self.add_account(meta, opts.client_id, opts.scope, &tokens, key)
            .await
    }

    /// Stores a new sign-in: its tokens in the keychain first, then its profile.
    async fn add_account(
        &self,
        meta: Metadata,
        client_id: &str,
        scope: &str,
        tokens: &Tokens,
        key: Option<DeviceKey>,
    ) -> Result<Profile> {
        // A server that took the proof but issued a bearer token did not bind anything.
        let key = key.filter(|_| tokens.dpop_bound);
        let (subject, label) = self.who(&meta, &tokens.access_token, key.as_ref()).await;
        let id = Profile::id_for(&meta.issuer, &subject);
        let stored = Stored::from_tokens(self.clock.now_secs(), tokens, None, key.as_ref())?;
        // A refresh of this account in flight (here or in another process) stores its rotated
        // token when it ends: the new sign-in is stored after it, not overwritten by it.
        let _lock = AccountLock::acquire(&self.paths.lock_file(&id)).await?;
        self.store
            .set(&self.paths.keychain_account(&id), &stored.encode())?;
        let profile = Profile {
            id,
            label,
            issuer: meta.issuer.trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            scope: tokens
                .scope
                .clone()
                .unwrap_or_else(|| login::scopes_for(&meta, scope).join(" ")),
            subject,
            added_at: self.clock.now_secs(),
            signed_out: None,
            metadata: meta,
            keychain: Some(self.store.backend()),
        };
        self.profiles.update(|p| {
            p.upsert(profile.clone());
            Ok(())
        })?;
        Ok(profile)
    }

    /// The subject and a label for a new account: userinfo if the server offers it, else the
    /// access token's claims (read only to name the account, never trusted for anything).
    async fn who(
        &self,
        meta: &Metadata,
        access: &Secret<String>,
        key: Option<&DeviceKey>,
    ) -> (String, String) {
        #[derive(Deserialize)]
        struct Who {
            sub: Option<String>,
            email: Option<String>,
        }
        let mut who: Option<Who> = None;
        if let Some(userinfo) = &meta.userinfo_endpoint {
            if let Ok(res) = self
                .send(
                    &self.http,
                    reqwest::Method::GET,
                    userinfo,
                    Credential { token: access, key },
                    None,
                    None,
                )
                .await
            {
                if res.status().is_success() {
                    who = res.json().await.ok();
                }
            }
        }
        if who.as_ref().and_then(|w| w.sub.as_ref()).is_none() {
            who = access
                .expose()
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok());
        }
        let sub = who
            .as_ref()
            .and_then(|w| w.sub.clone())
            .unwrap_or_else(|| "unknown".into());
        let label = who.and_then(|w| w.email).unwrap_or_else(|| sub.clone());
        (sub, label)
    }

    /// A valid access token for the account, refreshing ahead of expiry. The rotated refresh
    /// token is in the keychain before the new access token is returned: a rotation that is
    /// not stored is a session lost.
    pub async fn access_token(
        &self,
        account: Option<&str>,
    ) -> Result<(Profile, Secret<String>, i64)> {
        let a = self.access(account, false).await?;
        Ok((a.profile, a.token, a.expires_at))
    }

    /// Refreshes now, whatever the cached access token's expiry.
    pub async fn refresh_now(
        &self,
        account: Option<&str>,
    ) -> Result<(Profile, Secret<String>, i64)> {
        let a = self.access(account, true).await?;
        Ok((a.profile, a.token, a.expires_at))
    }

    pub(crate) async fn access(&self, account: Option<&str>, force: bool) -> Result<Access> {
        let profile = self.profile(account)?;
        if let Some(out) = &profile.signed_out {
            return Err(Error::SignedOut(format!(
                "{} is signed out: {}. Run `latchkey login --issuer {}` to sign in again",
                profile.label, out.reason, profile.issuer
            )));
        }
        let before = self.stored(&profile)?;
        if let (false, Some((token, expires_at))) =
            (force, before.fresh_access(self.clock.now_secs()))
        {
            let key = before.access_key()?;
            return Ok(Access {
                profile,
                token,
                expires_at,
                key,
            });
        }
        let _lock = AccountLock::acquire(&self.paths.lock_file(&profile.id)).await?;
        // Another process may have refreshed while we waited for the lock: use its result.
        let stored = self.stored(&profile)?;
        let rotated_meanwhile = stored.refresh_token != before.refresh_token;
        let key = stored.key()?;
        if let (true, Some((token, expires_at))) = (
            !force || rotated_meanwhile,
            stored.fresh_access(self.clock.now_secs()),
        ) {
            return Ok(Access {
                profile,
                token,
                expires_at,
                key,
            });
        }
        let refresh = Secret::new(stored.refresh_token);
        let proving = ProvingClient {
            http: &self.http,
            key: key.as_ref(),
            nonces: &self.nonces,
            clock: self.clock.as_ref(),
        };
        match login::refresh(&proving, &profile.metadata, &profile.client_id, &refresh).await {
            Ok(tokens) => {
                let now = self.clock.now_secs();
                let next = Stored::from_tokens(now, &tokens, Some(&refresh), key.as_ref())?;
                self.store
                    .set(&self.paths.keychain_account(&profile.id), &next.encode())?;
                Ok(Access {
                    expires_at: next.access_expires_at.unwrap_or(now),
                    profile,
                    token: tokens.access_token,
                    key: next.access_key()?,
                })
            }
            Err(GrantError::Refused(detail)) => {
                // Never retried: the server has ended this session.
                let reason =
                    "this session was revoked or its token was reused elsewhere".to_string();
                self.store
                    .delete(&self.paths.keychain_account(&profile.id))?;
                self.mark_signed_out(&profile.id, &reason)?;
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" (server: {detail})")
                };
                Err(Error::SignedOut(format!(
                    "{} is signed out: {reason}{detail}. Run `latchkey login --issuer {}` to sign in again",
                    profile.label, profile.issuer
                )))
            }
            Err(GrantError::Other(e)) => Err(e),
        }
    }

    fn stored(&self, profile: &Profile) -> Result<Stored> {
        let secret = self
            .store
            .get(&self.paths.keychain_account(&profile.id))?
            .ok_or_else(|| {
                Error::NotSignedIn(format!(
                    "no token for {} in the {}; run `latchkey login --issuer {}`",
                    profile.label,
                    self.backend().describe(),
                    profile.issuer
                ))
            })?;
        Stored::decode(&secret)
    }

    fn mark_signed_out(&self, id: &str, reason: &str) -> Result<()> {
        self.profiles.update(|p| {
            if let Some(profile) = p.accounts.iter_mut().find(|a| a.id == id) {
                profile.signed_out = Some(SignedOut {
                    at: self.clock.now_secs(),
                    reason: reason.into(),
                });
            }
            Ok(())
        })
    }

    /// Revokes the refresh token at the server (RFC 7009) and deletes it from the keychain;
    /// the account stays listed as signed out. Whether the server confirmed.
    pub async fn logout(&self, account: Option<&str>) -> Result<bool> {
        let profile = self.profile(account)?;
        let _lock = AccountLock::acquire(&self.paths.lock_file(&profile.id)).await?;
        let revoked = match self.store.get(&self.paths.keychain_account(&profile.id))? {
            Some(secret) => {
                let stored = Stored::decode(&secret)?;
                let refresh = Secret::new(stored.refresh_token);
                login::revoke(&self.http, &profile.metadata, &profile.client_id, &refresh).await
            }
            None => Ok(false),
        };
        // The local copy goes whatever the server said: the user asked to be signed out here.
        self.store
            .delete(&self.paths.keychain_account(&profile.id))?;
        self.mark_signed_out(&profile.id, "signed out on this device")?;
        revoked
    }

    /// Removes the account entirely: keychain entry and profile.
    pub fn forget(&self, account: &str) -> Result<Profile> {
        let profile = self.profile(Some(account))?;
        self.store
            .delete(&self.paths.keychain_account(&profile.id))?;
        self.profiles.update(|p| Ok(p.remove(&profile.id)))?;
        Ok(profile)
    }

    pub fn switch(&self, account: &str) -> Result<Profile> {
        self.profiles.update(|p| {
            let profile = p.select(Some(account))?.clone();
            p.current = Some(profile.id.clone());
            Ok(profile)
        })
    }

    /// Every account and its state, each read from the keychain it was stored in: one
    /// account's unusable keychain is its state, not a failure of the whole report.
    pub fn status(&self) -> Result<Vec<AccountStatus>> {
        let profiles = self.profiles.read()?;
        Ok(profiles
            .accounts
            .iter()
            .map(|p| {
                let keychain = p.keychain.unwrap_or_else(|| self.store.backend());
                let token = match &p.signed_out {
                    Some(out) => TokenState::SignedOut {
                        reason: out.reason.clone(),
                        at: out.at,
                    },
                    None => self.token_state(p, keychain),
                };
                AccountStatus {
                    id: p.id.clone(),
                    label: p.label.clone(),
                    issuer: p.issuer.clone(),
                    client_id: p.client_id.clone(),
                    current: profiles.current.as_deref() == Some(p.id.as_str()),
                    keychain,
                    token,
                }
            })
            .collect())
    }

    fn token_state(&self, profile: &Profile, keychain: Backend) -> TokenState {
        let other;
        let store: &dyn SecretStore = if keychain == self.store.backend() {
            self.store.as_ref()
        } else {
            other =
                keychain::open_unprobed(Choice::Auto, self.paths.insecure_store(), Some(keychain));
            other.as_ref()
        };
        let read = store
            .get(&self.paths.keychain_account(&profile.id))
            .and_then(|secret| secret.map(|s| Stored::decode(&s)).transpose());
        match read {
            Ok(Some(stored)) => TokenState::SignedIn {
                access_expires_at: stored.access_expires_at,
                device_key: stored
                    .key()
                    .ok()
                    .flatten()
                    .map(|k| k.thumbprint().to_string()),
            },
            Ok(None) => TokenState::NoToken,
            Err(Error::Keychain { message, fix }) => TokenState::KeychainUnusable { message, fix },
            Err(e) => TokenState::KeychainUnusable {
                message: e.to_string(),
                fix: "sign in again to replace the entry".into(),
            },
        }
    }
}
