use sqlx::Row;
use url::{Host, Url};

use serde_json::json;

use super::audit::{self, Actor};
use super::events::Audit;
use super::{conflict_on_unique, Origin, Result, StoreError};
use crate::clock::Millis;
use crate::db::Db;
use crate::scope;
use crate::secret::{constant_time_eq, new_token, token_hash, Secret, TokenKind};

/// The desktop app and CLI: a public native client on loopback redirects (RFC 8252 §7.3).
pub const DESKTOP_CLIENT_ID: &str = "latchkey-desktop";
const DESKTOP_REDIRECTS: [&str; 2] = ["http://127.0.0.1/callback", "http://[::1]/callback"];
/// The desktop app is first-party: it may reach the account API, and the support API for
/// people with the support role.
const DESKTOP_SCOPES: [&str; 6] = scope::USER;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A native or browser app that cannot keep a secret: PKCE is mandatory.
    Public,
    /// A server-side app with a client secret; may introspect tokens.
    Confidential,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Public => "public",
            ClientKind::Confidential => "confidential",
        }
    }
}

/// A grant a client may be registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum GrantType {
    /// A user signs in through the client (with PKCE); its refresh tokens come with it.
    AuthorizationCode,
    /// The client signs in as itself with its secret (RFC 6749 §4.4): a service account.
    ClientCredentials,
    /// A user approves the client's sign-in in a browser elsewhere, with a code (RFC 8628):
    /// for devices that cannot open a browser; refresh tokens come with it.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    #[value(name = "device_code")]
    DeviceCode,
}

/// Do these grants sign users in (a browser here, or a code approved elsewhere)?
fn signs_users_in(grants: &[GrantType]) -> bool {
    grants.contains(&GrantType::AuthorizationCode) || grants.contains(&GrantType::DeviceCode)
}

/// RFC 8628 §3.4's grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => DEVICE_CODE_GRANT,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "client_credentials" => Some(GrantType::ClientCredentials),
            DEVICE_CODE_GRANT => Some(GrantType::DeviceCode),
            _ => None,
        }
    }
}

#[derive(Clone, serde::Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    /// The grants it may use; any other is refused at the token endpoint.
    pub grant_types: Vec<GrantType>,
    /// The scopes it may ask for; a request for any other is refused.
    pub scopes: Vec<String>,
    /// Run by the operator: only these may be granted `account` and `support`.
    pub first_party: bool,
    pub builtin: bool,
    pub created_at: Millis,
    #[serde(skip)]
    secret_hash: Option<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("kind", &self.kind)
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("first_party", &self.first_party)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client known only by its redirect URIs, for checking them in isolation (fuzzing).
    #[cfg(fuzzing)]
    pub fn with_redirects(redirect_uris: Vec<String>) -> Self {
        Client {
            client_id: "fuzz".into(),
            name: "fuzz".into(),
            kind: ClientKind::Public,
            redirect_uris,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: Vec::new(),
            first_party: false,
            builtin: false,
            created_at: 0,
            secret_hash: None,
        }
    }

    /// May this client ask for `scope`?
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Does it sign users in (with a code from a browser here, or approved elsewhere)?
    pub fn signs_users_in(&self) -> bool {
        signs_users_in(&self.grant_types)
    }

    /// May this client use `grant`?
    pub fn may(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn verify_secret(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => constant_time_eq(hash, &token_hash(secret)),
            None => false,
        }
    }

    /// Exact match, except that a registered loopback IP literal accepts any port (RFC 8252 §7.3).
    pub fn redirect_uri_allowed(&self, requested: &str) -> bool {
        let Ok(req) = Url::parse(requested) else {
            return false;
        };
        if req.fragment().is_some() {
            return false;
        }
        self.redirect_uris.iter().any(|registered| {
            if registered == requested {
                return true;
            }
            let Ok(reg) = Url::parse(registered) else {
                return false;
            };
            // Only a registration that could have been made widens: a stored URI with a
            // fragment (refused by `validate_redirect_uri`) matches nothing but itself.
            is_loopback_ip(&reg)
                && reg.fragment().is_none()
                && reg.scheme() == req.scheme()
                && reg.host() == req.host()
                && reg.path() == req.path()
                && reg.query() == req.query()
                && req.username().is_empty()
                && req.password().is_none()
        })
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
}

/// Redirect URIs a client may register: https, http on loopback, or a private-use scheme with a
/// dot (RFC 8252 §7.1); never a fragment.
pub fn validate_redirect_uri(uri: &str) -> Result<()> {
    let url =
        Url::parse(uri).map_err(|e| StoreError::Invalid(format!("redirect URI {uri:?}: {e}")))?;
    if url.fragment().is_some() {
        return Err(StoreError::Invalid(format!(
            "redirect URI {uri:?} must not have a fragment"
        )));
    }
    let ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback_ip(&url) || url.host_str() == Some("localhost"),
        scheme => scheme.contains('.'),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "redirect URI {uri:?} must be https, http on a loopback address, or a private-use scheme like com.example.app:/callback"
        )))
    }
}

fn client_from_row(row: &sqlx::any::AnyRow) -> Result<Client> {
    let uris: String = row.try_get("redirect_uris")?;
    Ok(Client {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        kind: if row.try_get::<String, _>("kind")? == "confidential" {
            ClientKind::Confidential
        } else {
            ClientKind::Public
        },
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        grant_types: row
            .try_get::<String, _>("grant_types")?
            .split_ascii_whitespace()
            .filter_map(GrantType::parse)
            .collect(),
        scopes: row
            .try_get::<String, _>("scopes")?
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        first_party: row.try_get::<i64, _>("first_party")? != 0,
        builtin: row.try_get::<i64, _>("builtin")? != 0,
        created_at: row.try_get("created_at")?,
        secret_hash: row.try_get("secret_hash")?,
    })
}

const COLUMNS: &str = "client_id, name, kind, secret_hash, redirect_uris, grant_types, scopes, \
     first_party, builtin, created_at";

/// Present from first start, re-created if someone deleted it from the database by hand, and
/// given this version's redirects and scopes if an older version registered it.
pub async fn ensure_builtin(db: &Db, now: Millis) -> Result<()> {
    let uris = serde_json::to_string(&DESKTOP_REDIRECTS).expect("static list serializes");
    sqlx::query(
        "INSERT INTO clients (client_id, name, kind, redirect_uris, grant_types, scopes, first_party, builtin, created_at) \
         VALUES ($1, $2, 'public', $3, $4, $5, 1, 1, $6) ON CONFLICT (client_id) DO UPDATE SET \
         kind = 'public', redirect_uris = excluded.redirect_uris, grant_types = excluded.grant_types, \
         scopes = excluded.scopes, first_party = 1, builtin = 1",
    )
    .bind(DESKTOP_CLIENT_ID)
    .bind("Latchkey Desktop")
    .bind(&uris)
    .bind(format!("authorization_code {DEVICE_CODE_GRANT}"))
    .bind(DESKTOP_SCOPES.join(" "))
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(())
}

pub async fn find(db: &Db, client_id: &str) -> Result<Option<Client>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM clients WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(db.read())
    .await?;
    row.as_ref().map(client_from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<Client>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM clients ORDER BY client_id"))
        .fetch_all(db.read())
        .await?;
    rows.iter().map(client_from_row).collect()
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub kind: ClientKind,
    pub redirect_uris: &'a [String],
    /// The grants it may use; empty means `authorization_code`.
    pub grant_types: &'a [GrantType],
    /// The scopes it may ask for; empty means the default of its grants: `openid profile email
    /// offline_access` for a sign-in client, none for a service account.
    pub scopes: &'a [String],
    pub first_party: bool,
}

/// The grants a new client may use, checked: `client_credentials` needs a secret.
fn registered_grants(c: &NewClient<'_>) -> Result<Vec<GrantType>> {
    let mut grants: Vec<GrantType> = Vec::new();
    for &g in c.grant_types {
        if !grants.contains(&g) {
            grants.push(g);
        }
    }
    if grants.is_empty() {
        grants.push(GrantType::AuthorizationCode);
    }
    if grants.contains(&GrantType::ClientCredentials) && c.kind != ClientKind::Confidential {
        return Err(StoreError::Invalid(
            "client_credentials is for confidential clients (--kind confidential): a public client has no secret to sign in with".into(),
        ));
    }
    Ok(grants)
}

/// The scopes a new client may ask for, checked: known ones, `account` or `support` only for a
/// first-party client, user scopes only with a sign-in grant (`authorization_code`,
/// `device_code`) and service scopes only
/// with `client_credentials`.
fn registered_scopes(c: &NewClient<'_>, grants: &[GrantType]) -> Result<Vec<String>> {
    let signs_in = signs_users_in(grants);
    let service = grants.contains(&GrantType::ClientCredentials);
    let asked: Vec<&str> = c
        .scopes
        .iter()
        .flat_map(|s| s.split_ascii_whitespace())
        .collect();
    let asked = if asked.is_empty() && signs_in {
        scope::DEFAULT_CLIENT.to_vec()
    } else {
        asked
    };
    let mut scopes: Vec<String> = Vec::new();
    for s in asked {
        if !scope::is_known(s) {
            return Err(StoreError::Invalid(format!(
                "unknown scope {s:?}: latchkeyd knows {}",
                scope::ALL.join(", ")
            )));
        }
        if scope::is_service(s) && !service {
            return Err(StoreError::Invalid(format!(
                "the {s} scope is for a service account's own token: register the client with --grant client_credentials"
            )));
        }
        if !scope::is_service(s) && !signs_in {
            return Err(StoreError::Invalid(format!(
                "the {s} scope is for a user's sign-in: register the client with --grant authorization_code (or device_code)"
            )));
        }
        if scope::FIRST_PARTY_ONLY.contains(&s) && !c.first_party {
            return Err(StoreError::Invalid(format!(
                "the {s} scope reaches latchkeyd's own account and support APIs: only a first-party client (--first-party) may have it"
            )));
        }
        if !scopes.iter().any(|k| k == s) {
            scopes.push(s.to_string());
        }
    }
    Ok(scopes)
}

/// Registers a client, audited; for a confidential one, returns its secret (shown once, stored
/// hashed).
pub async fn add(
    db: &Db,
    c: &NewClient<'_>,
    by: Actor<'_>,
    now: Millis,
) -> Result<Option<Secret<String>>> {
    let client_id = c.client_id;
    let id_ok = !client_id.is_empty()
        && client_id.len() <= 128
        && client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    if !id_ok {
        return Err(StoreError::Invalid(
            "a client id is 1-128 characters of letters, digits and - . _ ~".into(),
        ));
    }
    if c.name.trim().is_empty() || c.name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "a client's name is shown on the sign-in page: plain text, not empty".into(),
        ));
    }
    let grants = registered_grants(c)?;
    let redirects = grants.contains(&GrantType::AuthorizationCode);
    if redirects && c.redirect_uris.is_empty() {
        return Err(StoreError::Invalid(
            "a client that signs users in needs at least one redirect URI".into(),
        ));
    }
    if !redirects && !c.redirect_uris.is_empty() {
        return Err(StoreError::Invalid(
            "a client that does not sign users in (no authorization_code grant) takes no redirect URI".into(),
        ));
    }
    for uri in c.redirect_uris {
        validate_redirect_uri(uri)?;
    }
    let scopes = registered_scopes(c, &grants)?;
    let grant_names: Vec<&str> = grants.iter().map(|g| g.as_str()).collect();
    let secret = (c.kind == ClientKind::Confidential).then(|| new_token(TokenKind::ClientSecret));
    let uris = serde_json::to_string(c.redirect_uris).expect("strings serialize");
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO clients (client_id, name, kind, secret_hash, redirect_uris, grant_types, scopes, first_party, builtin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
    )
    .bind(client_id)
    .bind(c.name.trim())
    .bind(c.kind.as_str())
    .bind(secret.as_ref().map(|s| token_hash(s.expose())))
    .bind(&uris)
    .bind(grant_names.join(" "))
    .bind(scopes.join(" "))
    .bind(i64::from(c.first_party))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, format!("a client with id {client_id} already exists")))?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: "client.add",
            target_user_id: None,
            target_session_id: None,
            reason: None,
            origin: &Origin::default(),
            details: json!({
                "client_id": client_id,
                "kind": c.kind.as_str(),
                "first_party": c.first_party,
                "grant_types": grant_names,
                "scopes": scopes,
                "redirect_uris": c.redirect_uris,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Removes a client: every session signed in through it is revoked and its pending sign-ins
/// and codes deleted, in one transaction, so that registering the same id again revives
/// nothing. The sessions revoked.
pub async fn remove(db: &Db, client_id: &str, by: Actor<'_>, now: Millis) -> Result<Vec<String>> {
    match find(db, client_id).await? {
        None => {
            return Err(StoreError::NotFound(format!(
                "no client with id {client_id}"
            )))
        }
        Some(c) if c.builtin => {
            return Err(StoreError::Invalid(format!(
                "{client_id} is built in: the desktop app and CLI sign in with it"
            )))
        }
        Some(_) => {}
    }
    let mut tx = db.begin_write().await?;
    let mut ids: Vec<String> =
        sqlx::query("SELECT id FROM sessions WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
    ids.sort();
    super::revocation::lock_sessions(&mut tx, &ids).await?;
    let origin = Origin::default();
    let mut revoked = Vec::new();
    for id in ids {
        let done = super::revocation::revoke_and_record(
            &mut tx,
            &id,
            by,
            "client_removed",
            &origin,
            now,
            Audit::Covered,
            None,
        )
        .await?;
        if done {
            revoked.push(id);
        }
    }
    for table in ["auth_requests", "auth_codes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE client_id = $1"))
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
    }
    // A receiver's streams are its own: a client registered again under the same id must not
    // find them, nor what waits in them.
    sqlx::query(
        "DELETE FROM ssf_outbox WHERE stream_id IN (SELECT id FROM ssf_streams WHERE client_id = $1)",
    )
    .bind(client_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM ssf_streams WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM clients WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: "client.remove",
            target_user_id: None,
            target_session_id: None,
            reason: None,
            origin: &origin,
            details: json!({ "client_id": client_id, "revoked_sessions": revoked }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desktop() -> Client {
        Client {
            client_id: DESKTOP_CLIENT_ID.into(),
            name: "d".into(),
            kind: ClientKind::Public,
            redirect_uris: DESKTOP_REDIRECTS.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: DESKTOP_SCOPES.iter().map(|s| s.to_string()).collect(),
            first_party: true,
            builtin: true,
            created_at: 0,
            secret_hash: None,
        }
    }

    #[test]
    fn loopback_redirects_accept_any_port_and_nothing_else() {
        let c = desktop();
        assert!(c.redirect_uri_allowed("http://127.0.0.1:53124/callback"));
        assert!(c.redirect_uri_allowed("http://127.0.0.1/callback"));
        assert!(c.redirect_uri_allowed("http://[::1]:8080/callback"));
        assert!(!c.redirect_uri_allowed("http://localhost:53124/callback"));
        assert!(!c.redirect_uri_allowed("http://127.0.0.1:53124/callback/x"));
        assert!(!c.redirect_uri_allowed("http://127.0.0.1:53124/callback?x=1"));
        assert!(!c.redirect_uri_allowed("https://127.0.0.1:53124/callback"));
        assert!(!c.redirect_uri_allowed("http://127.0.0.2:53124/callback"));
        assert!(!c.redirect_uri_allowed("http://evil@127.0.0.1:5/callback"));
        assert!(!c.redirect_uri_allowed("http://127.0.0.1:5/callback#frag"));
        assert!(!c.redirect_uri_allowed("not a url"));
    }

    /// Found by the `redirect_uri` fuzz target: a loopback URI stored with a fragment (which
    /// no registration can make) widened to other ports as a registrable one does.
    #[test]
    fn an_unregistrable_loopback_uri_does_not_widen() {
        let mut c = desktop();
        c.redirect_uris = vec!["http://127.0.0.1/#al:c{#k".into()];
        assert!(!c.redirect_uri_allowed("http://127.0.0.1"));
        assert!(!c.redirect_uri_allowed("http://127.0.0.1:5000/"));
    }

    #[test]
    fn https_redirects_match_exactly() {
        let mut c = desktop();
        c.redirect_uris = vec!["https://app.example.com/cb".into()];
        assert!(c.redirect_uri_allowed("https://app.example.com/cb"));
        assert!(!c.redirect_uri_allowed("https://app.example.com:444/cb"));
        assert!(!c.redirect_uri_allowed("https://app.example.com/cb/"));
    }

    #[test]
    fn registrable_redirects() {
        assert!(validate_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(validate_redirect_uri("http://127.0.0.1/cb").is_ok());
        assert!(validate_redirect_uri("com.example.app:/cb").is_ok());
        assert!(validate_redirect_uri("http://app.example.com/cb").is_err());
        assert!(validate_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(validate_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn only_first_party_clients_may_have_the_api_scopes() {
        let uris = ["https://app.example.com/cb".to_string()];
        let client = |scopes: &[&str], first_party| {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            registered_scopes(
                &NewClient {
                    client_id: "app",
                    name: "App",
                    kind: ClientKind::Confidential,
                    redirect_uris: &uris,
                    grant_types: &[],
                    scopes: &scopes,
                    first_party,
                },
                &[GrantType::AuthorizationCode],
            )
        };
        assert_eq!(
            client(&[], false).unwrap(),
            ["openid", "profile", "email", "offline_access"]
        );
        assert_eq!(
            client(&["openid email", "openid"], false).unwrap(),
            ["openid", "email"]
        );
        for api in ["account", "support"] {
            let refused = client(&["openid", api], false).unwrap_err().to_string();
            assert!(refused.contains("first-party"), "{refused}");
        }
        assert_eq!(
            client(&["openid account support"], true).unwrap(),
            ["openid", "account", "support"]
        );
        assert!(client(&["admin"], true).is_err());
    }

    #[test]
    fn service_scopes_go_with_client_credentials_and_user_scopes_with_sign_in() {
        let new = |kind, grant_types: &'static [GrantType], scopes: &'static [&'static str]| {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            let c = NewClient {
                client_id: "svc",
                name: "Service",
                kind,
                redirect_uris: &[],
                grant_types,
                scopes: &[],
                first_party: false,
            };
            registered_grants(&c).and_then(|g| {
                registered_scopes(
                    &NewClient {
                        scopes: &scopes,
                        ..c
                    },
                    &g,
                )
            })
        };
        let cc: &[GrantType] = &[GrantType::ClientCredentials];
        assert_eq!(
            new(ClientKind::Confidential, cc, &["ssf"]).unwrap(),
            ["ssf"]
        );
        assert!(
            new(ClientKind::Confidential, cc, &[]).unwrap().is_empty(),
            "a service account has no default scope"
        );
        let public = new(ClientKind::Public, cc, &["ssf"])
            .unwrap_err()
            .to_string();
        assert!(public.contains("confidential"), "{public}");
        let user = new(ClientKind::Confidential, cc, &["openid"])
            .unwrap_err()
            .to_string();
        assert!(user.contains("authorization_code"), "{user}");
        let service = new(ClientKind::Confidential, &[], &["openid ssf"])
            .unwrap_err()
            .to_string();
        assert!(service.contains("client_credentials"), "{service}");
        let both: &[GrantType] = &[GrantType::AuthorizationCode, GrantType::ClientCredentials];
        assert_eq!(
            new(ClientKind::Confidential, both, &["openid ssf"]).unwrap(),
            ["openid", "ssf"]
        );
    }
}
