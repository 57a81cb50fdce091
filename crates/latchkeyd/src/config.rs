//! Settings: built-in defaults, then a TOML file, then `LATCHKEY_*` environment variables, then
//! command-line flags (the last two are merged by clap in `cli`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The JWS algorithm for newly generated signing keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum SigningAlg {
    #[default]
    #[serde(rename = "EdDSA")]
    #[value(name = "EdDSA")]
    EdDsa,
    #[serde(rename = "ES256")]
    #[value(name = "ES256")]
    Es256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(SigningAlg::EdDsa),
            "ES256" => Some(SigningAlg::Es256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Public URL of the server (the `iss` of every token). Defaults to `http://<listen>`.
    pub issuer: Option<String>,
    /// `sqlite://PATH` or `postgres://…`. Defaults to SQLite in the XDG data dir.
    pub database: Option<String>,
    /// File holding the base64 master key; created on first start. `LATCHKEY_MASTER_KEY` wins.
    pub master_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Take the client address from the last `X-Forwarded-For` hop (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Serve Prometheus metrics (`/metrics`) on this address, for the monitoring network only;
    /// without it there is no `/metrics` at all. The metrics say how many grants, sign-ins
    /// and revocations the server handles: not for the public.
    pub metrics_listen: Option<SocketAddr>,
    /// How often signing keys are reloaded (to pick up `keys rotate`) and dead rows pruned.
    pub upkeep_interval_secs: u64,
    pub tokens: TokenPolicy,
    pub signin: SignInPolicy,
    pub signals: SignalPolicy,
    pub dpop: DpopPolicy,
    pub limits: Limits,
    pub audit: AuditPolicy,
    pub ssf: SsfPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            issuer: None,
            database: None,
            master_key_file: None,
            log_format: LogFormat::Text,
            trust_forwarded_for: false,
            metrics_listen: None,
            upkeep_interval_secs: 30,
            tokens: TokenPolicy::default(),
            signin: SignInPolicy::default(),
            signals: SignalPolicy::default(),
            dpop: DpopPolicy::default(),
            limits: Limits::default(),
            audit: AuditPolicy::default(),
            ssf: SsfPolicy::default(),
        }
    }
}

/// Shared Signals push delivery (RFC 8935).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsfPolicy {
    /// Let receivers push-deliver to `http://` on a loopback address, for development. Off, a
    /// push endpoint must be https on a public address: private, loopback and link-local
    /// addresses are refused, so a stream cannot make latchkeyd call into its own network.
    pub allow_http_loopback_push: bool,
    /// How long one push may take before it counts as failed and is tried again later.
    pub push_timeout_secs: u64,
}

impl Default for SsfPolicy {
    fn default() -> Self {
        Self {
            allow_http_loopback_push: false,
            push_timeout_secs: 10,
        }
    }
}

/// Signed checkpoints of the audit log, kept outside the database (see `checkpoint`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditPolicy {
    /// Append each checkpoint to this file (JSON lines), besides the log. Ship it somewhere
    /// the database's users cannot write: it is what `audit verify --checkpoint` trusts.
    pub checkpoint_file: Option<PathBuf>,
    /// How often a checkpoint is taken while the log grows (and once at shutdown).
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            checkpoint_file: None,
            checkpoint_interval_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenPolicy {
    pub access_token_ttl_secs: u64,
    pub id_token_ttl_secs: u64,
    pub auth_code_ttl_secs: u64,
    /// Absolute lifetime of a token family; rotation never extends it.
    pub family_lifetime_secs: u64,
    /// A family unused for this long expires.
    pub family_idle_secs: u64,
    /// How long after a rotation the previous token may be replayed (lost response); 0 = never.
    pub reuse_grace_secs: u64,
    /// How many times, at most, one token may be replayed within the grace window.
    pub reuse_grace_max_replays: u32,
    /// Past this, signing in again revokes the least recently used session.
    pub max_sessions_per_user: u32,
    pub signing_alg: SigningAlg,
    /// After `keys rotate`, how long the new key is only published before it signs: longer
    /// than every replica's key reload and every relying party's JWKS cache.
    pub key_activation_delay_secs: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 300,
            id_token_ttl_secs: 300,
            auth_code_ttl_secs: 60,
            family_lifetime_secs: 30 * 24 * 3600,
            family_idle_secs: 14 * 24 * 3600,
            reuse_grace_secs: 0,
            reuse_grace_max_replays: 2,
            max_sessions_per_user: 100,
            signing_alg: SigningAlg::EdDsa,
            key_activation_delay_secs: 90,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInPolicy {
    /// Failed passwords for one account from one address within the window, before sign-ins
    /// to it from there wait for the window to pass.
    pub max_failures_per_account: u32,
    /// Failed passwords for one account from everywhere within the window before each
    /// further attempt waits, twice as long each time, up to the window (a distributed
    /// guesser; the account holder is only delayed).
    pub max_failures_per_account_total: u32,
    /// Failed passwords from one address (IPv6: one /64) within the window before each further
    /// attempt from there waits, twice as long each time, up to `address_backoff_max_secs`: a
    /// growing delay, not a lockout, so that strangers guessing from a shared address (an
    /// office, a proxy) cannot lock everyone else there out.
    pub max_failures_per_address: u32,
    pub address_backoff_max_secs: u64,
    pub failure_window_secs: u64,
    /// How long a sign-in form stays valid.
    pub form_ttl_secs: u64,
    /// Password checks running at once (argon2id takes 19 MiB each); more wait their turn.
    /// 0: one per CPU.
    pub max_concurrent_password_checks: usize,
    /// How long a device sign-in's code may be entered (RFC 8628 `expires_in`).
    pub device_code_ttl_secs: u64,
    /// The least wait between a device's polls (RFC 8628 `interval`); each `slow_down` adds 5 s.
    pub device_poll_interval_secs: u64,
    /// Wrong passwords on one device code's approval form before the code is refused for good:
    /// a code is short, so it is not left open to guessing at the account behind it.
    pub device_code_max_failures: u32,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_account_total: 100,
            max_failures_per_address: 20,
            address_backoff_max_secs: 60,
            failure_window_secs: 15 * 60,
            form_ttl_secs: 15 * 60,
            max_concurrent_password_checks: 0,
            device_code_ttl_secs: 10 * 60,
            device_poll_interval_secs: 5,
            device_code_max_failures: 5,
        }
    }
}

/// When a family's use looks like someone else holds its token (see `signals`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalPolicy {
    /// Addresses in the same IPv4 network of this prefix length count as the same place.
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
    /// Two networks using one family within this many seconds is `concurrent_use`; further
    /// apart it is only `address_changed`.
    pub concurrent_window_secs: u64,
    /// More refreshes than this in one minute is a `refresh_storm` (an honest client refreshes
    /// about once per access-token lifetime).
    pub storm_refreshes_per_minute: u32,
    /// Revoke a family as soon as it raises a high-severity signal.
    pub auto_revoke_high: bool,
    /// "This was me" for a session from that same session needs a sign-in at most this old:
    /// a flagged session's token may be in someone else's hands.
    pub acknowledge_max_age_secs: u64,
}

impl Default for SignalPolicy {
    fn default() -> Self {
        Self {
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 48,
            concurrent_window_secs: 120,
            storm_refreshes_per_minute: 30,
            auto_revoke_high: false,
            acknowledge_max_age_secs: 300,
        }
    }
}

/// Sender-constrained tokens (DPoP, RFC 9449).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopPolicy {
    /// A proof older than this (by its `iat`) is refused.
    pub proof_max_age_secs: u64,
    /// How far in the future a proof's `iat` may be (the client's clock running ahead).
    pub clock_skew_secs: u64,
    /// Make clients put a server nonce (`DPoP-Nonce`) in token-endpoint proofs, so a proof
    /// cannot be made ahead of time (§8). Costs a client one extra round trip now and then.
    pub require_nonce: bool,
    /// How long a nonce stays good.
    pub nonce_lifetime_secs: u64,
    /// A bound refresh token presented with another key (or none) is proof of theft: revoke
    /// its family at once, besides refusing and recording it.
    pub revoke_on_key_mismatch: bool,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            proof_max_age_secs: 60,
            clock_skew_secs: 10,
            require_nonce: false,
            nonce_lifetime_secs: 300,
            revoke_on_key_mismatch: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub request_body_bytes: usize,
    pub request_timeout_secs: u64,
    /// Requests to the sign-in page and form (`/authorize`) per client address: each one
    /// writes a form or checks a password, so a flood is cut off before the database.
    pub authorize: RateLimit,
    /// Failed requests at `/token`, `/revoke` and `/introspect` per client address; requests
    /// that succeed are never limited.
    pub token_failures: RateLimit,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_body_bytes: 64 * 1024,
            request_timeout_secs: 15,
            authorize: RateLimit::default(),
            token_failures: RateLimit::default(),
        }
    }
}

/// A rate per client address (IPv4 /32, IPv6 /64): `per_minute` sustained, up to `burst` at
/// once. A `per_minute` of 0 switches the limit off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_minute: 60,
            burst: 30,
        }
    }
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown,
            message: e.message().to_string(),
        })
    }

    pub fn data_dir() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("latchkey")
    }

    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                Self::data_dir().join("latchkey.db").display()
            )
        })
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| Self::data_dir().join("master.key"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.tokens;
        if t.access_token_ttl_secs == 0 || t.access_token_ttl_secs > 3600 {
            return Err(ConfigError::Invalid(
                "tokens.access_token_ttl_secs must be between 1 and 3600".into(),
            ));
        }
        if t.family_idle_secs == 0 || t.family_lifetime_secs == 0 {
            return Err(ConfigError::Invalid(
                "token family lifetimes must be positive".into(),
            ));
        }
        if t.max_sessions_per_user == 0 {
            return Err(ConfigError::Invalid(
                "tokens.max_sessions_per_user must be at least 1".into(),
            ));
        }
        let g = &self.signals;
        if g.ipv4_prefix_len > 32 || g.ipv6_prefix_len > 128 || g.storm_refreshes_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "signals: prefix lengths must fit the address (<= 32, <= 128) and storm_refreshes_per_minute must be positive".into(),
            ));
        }
        let s = &self.signin;
        if !(60..=3600).contains(&s.device_code_ttl_secs)
            || !(1..=60).contains(&s.device_poll_interval_secs)
            || s.device_code_max_failures == 0
        {
            return Err(ConfigError::Invalid(
                "signin: device_code_ttl_secs must be 60-3600, device_poll_interval_secs 1-60 and device_code_max_failures at least 1".into(),
            ));
        }
        let d = &self.dpop;
        if d.proof_max_age_secs == 0 || d.nonce_lifetime_secs < 10 {
            return Err(ConfigError::Invalid(
                "dpop.proof_max_age_secs must be positive and dpop.nonce_lifetime_secs at least 10"
                    .into(),
            ));
        }
        if let Some(issuer) = &self.issuer {
            let url = url::Url::parse(issuer)
                .map_err(|e| ConfigError::Invalid(format!("issuer {issuer:?}: {e}")))?;
            if !matches!(url.scheme(), "https" | "http")
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(ConfigError::Invalid(format!(
                    "issuer {issuer:?} must be an http(s) URL without query or fragment"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_overrides_defaults_and_rejects_typos() {
        let dir = std::env::temp_dir().join(format!("lk-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latchkey.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[tokens]\nreuse_grace_secs = 5\nsigning_alg = \"ES256\"\n",
        )
        .unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.tokens.reuse_grace_secs, 5);
        assert_eq!(s.tokens.signing_alg, SigningAlg::Es256);
        assert_eq!(s.tokens.access_token_ttl_secs, 300);

        std::fs::write(&path, "[tokens]\nacess_token_ttl_secs = 5\n").unwrap();
        let err = Settings::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("acess_token_ttl_secs"), "{err}");

        // A limit's table may give one field; the other keeps its default.
        std::fs::write(&path, "[limits.authorize]\nper_minute = 0\n").unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.limits.authorize.per_minute, 0);
        assert_eq!(s.limits.authorize.burst, 30);
        assert_eq!(s.limits.token_failures.per_minute, 60);
    }
}
