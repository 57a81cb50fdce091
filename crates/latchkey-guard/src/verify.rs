//! The checks on one request: the access token (RFC 9068), its DPoP proof (RFC 9449 §7), and
//! whether its session was revoked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{feed, introspect, Guard, GuardError, Principal, Rejection, Revocations, JWKS_REFETCH};

/// The proof algorithms a bound token's key may use.
pub use latchkey_dpop::ALGS;

const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// How old a DPoP proof may be, and how far ahead a client's clock may run.
const PROOF_WINDOW: latchkey_dpop::Window = latchkey_dpop::Window {
    max_age_secs: 60,
    clock_skew_secs: 10,
};
/// Leeway on `exp` for clocks that differ a little between latchkeyd and the API.
const LEEWAY_SECS: u64 = 5;
/// The most proofs remembered against replay: past this the oldest are dropped first.
const MAX_PROOFS: usize = 100_000;
/// The most access tokens remembered as checked; past this the expired go, then all.
const MAX_VERIFIED: usize = 100_000;

/// latchkeyd's verification keys, by `kid`, and the tokens already checked against them.
pub(crate) struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Instant,
    /// Access tokens whose signature and claims passed, by the SHA-256 of the token, with
    /// their claims: a client sends one token many times, and its signature cannot change.
    /// Kept with the keys, so that a new key set checks every token afresh. Expiry,
    /// revocation and DPoP proofs are still checked on every request.
    verified: HashMap<[u8; 32], Arc<Claims>>,
}

impl Keys {
    /// No keys, for a guard that never checks a JWT itself.
    pub(crate) fn none() -> Self {
        Self {
            by_kid: HashMap::new(),
            fetched: Instant::now(),
            verified: HashMap::new(),
        }
    }

    pub(crate) async fn fetch(http: &reqwest::Client, url: &str) -> Result<Self, GuardError> {
        let set: JwkSet = feed::get_json(http, url, None).await?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            let Ok(alg) = alg.to_string().parse::<Algorithm>() else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(kid.clone(), (alg, key));
            }
        }
        Ok(Self {
            by_kid,
            fetched: Instant::now(),
            verified: HashMap::new(),
        })
    }

    fn remember(&mut self, digest: [u8; 32], claims: Arc<Claims>) {
        if self.verified.len() >= MAX_VERIFIED {
            let now = now_secs();
            self.verified.retain(|_, c| c.exp + LEEWAY_SECS > now);
        }
        if self.verified.len() >= MAX_VERIFIED {
            self.verified.clear();
        }
        self.verified.insert(digest, claims);
    }
}

#[derive(Clone, Deserialize)]
pub(crate) struct Claims {
    sub: String,
    /// Seconds since the epoch (RFC 7519 §4.1.4).
    #[serde(default)]
    exp: u64,
    client_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    cnf: Option<Confirmation>,
}

#[derive(Clone, Deserialize)]
struct Confirmation {
    jkt: String,
}

enum Scheme {
    Bearer,
    Dpop,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn credentials(parts: &Parts) -> Result<(Scheme, &str), Rejection> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Rejection {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: "this API needs an access token from Latchkey",
            dpop: false,
        });
    };
    if values.next().is_some() {
        return Err(Rejection::new(
            "invalid_request",
            "send one Authorization header",
            false,
        ));
    }
    let value = value.to_str().map_err(|_| {
        Rejection::new(
            "invalid_request",
            "the Authorization header is not text",
            false,
        )
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Rejection::new(
            "invalid_request",
            "the Authorization header is malformed",
            false,
        )
    })?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(Rejection::new(
            "invalid_request",
            "use the Bearer or DPoP scheme",
            false,
        ));
    };
    Ok((scheme, token.trim()))
}

/// The key for `kid`: from the cache, or from the JWKS fetched again if it is old enough.
pub(crate) async fn key_for(guard: &Guard, kid: &str) -> Option<(Algorithm, DecodingKey)> {
    if let Some(k) = guard.inner.keys.read().expect("keys lock").by_kid.get(kid) {
        return Some(k.clone());
    }
    let stale = guard
        .inner
        .keys
        .read()
        .expect("keys lock")
        .fetched
        .elapsed()
        >= JWKS_REFETCH;
    if !stale {
        return None;
    }
    match Keys::fetch(&guard.inner.http, &guard.inner.jwks_uri).await {
        Ok(keys) => {
            let found = keys.by_kid.get(kid).cloned();
            *guard.inner.keys.write().expect("keys lock") = keys;
            found
        }
        Err(e) => {
            tracing::warn!(error = %e, "latchkey-guard: cannot fetch latchkeyd's keys");
            // Wait out the interval before trying again.
            guard.inner.keys.write().expect("keys lock").fetched = Instant::now();
            None
        }
    }
}

/// The request's URL as its client addressed it, without query (DPoP's `htu`).
fn request_url(guard: &Guard, parts: &Parts) -> Option<String> {
    let path = parts.uri.path();
    match &guard.inner.config.public_url {
        Some(base) => Some(format!("{}{path}", base.trim_end_matches('/'))),
        None => {
            let host = parts.headers.get(header::HOST)?.to_str().ok()?;
            Some(format!("http://{host}{path}"))
        }
    }
}

pub(crate) async fn check(guard: &Guard, parts: &Parts) -> Result<Principal, Rejection> {
    let (scheme, token) = credentials(parts)?;
    let dpop = matches!(scheme, Scheme::Dpop);
    let invalid = |d: &'static str| Rejection::new("invalid_token", d, dpop);
    let config = &guard.inner.config;
    let claims = match config.revocations {
        Revocations::Introspect => Arc::new(introspect::claims(guard, token, dpop).await?),
        _ => offline(guard, token, dpop).await?,
    };

    let jkt = match (&claims.cnf, scheme) {
        (Some(cnf), Scheme::Dpop) => {
            proof(guard, parts, token, &cnf.jkt)?;
            Some(cnf.jkt.clone())
        }
        // RFC 9449 §7.2: a bound token is no bearer token.
        (Some(_), Scheme::Bearer) => {
            return Err(Rejection::new(
                "invalid_token",
                "this access token is bound to a key: send it as DPoP with a proof",
                true,
            ))
        }
        (None, Scheme::Dpop) => {
            return Err(invalid(
                "this access token is not bound to a key: send it as Bearer",
            ))
        }
        (None, Scheme::Bearer) => None,
    };

    if claims
        .sid
        .as_deref()
        .is_some_and(|sid| guard.is_revoked(sid))
    {
        return Err(invalid("the session of this access token was revoked"));
    }
    if let Some(seconds_since_contact) = guard.stale_for() {
        if config.fail_closed {
            tracing::error!(
                ?seconds_since_contact,
                "latchkey-guard: the revocation feed is stale; refusing tokens"
            );
            return Err(Rejection {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: Some("temporarily_unavailable"),
                description: "this API cannot learn of revocations from Latchkey right now",
                dpop,
            });
        }
        tracing::warn!(
            ?seconds_since_contact,
            "latchkey-guard: the revocation feed is stale; accepting a token on its JWT alone"
        );
    }
    let claims = Arc::unwrap_or_clone(claims);
    Ok(Principal {
        subject: claims.sub,
        client_id: claims.client_id,
        scope: claims.scope,
        session_id: claims.sid,
        jkt,
    })
}

/// The claims of a JWT access token checked here: its type, latchkeyd's signature, issuer,
/// expiry and (if configured) audience; a token seen before only for its expiry.
async fn offline(guard: &Guard, token: &str, dpop: bool) -> Result<Arc<Claims>, Rejection> {
    let invalid = |d: &'static str| Rejection::new("invalid_token", d, dpop);
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let seen = guard
        .inner
        .keys
        .read()
        .expect("keys lock")
        .verified
        .get(&digest)
        .cloned();
    if let Some(claims) = seen {
        // jsonwebtoken's rule: expired once now is past exp + leeway.
        if claims.exp + LEEWAY_SECS < now_secs() {
            return Err(invalid("the access token has expired"));
        }
        return Ok(claims);
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| invalid("the access token is not a JWT"))?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(invalid("the token is not an access token (typ at+jwt)"));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("the access token names no key"))?;
    let (alg, decoding) = key_for(guard, kid)
        .await
        .ok_or_else(|| invalid("the access token was signed by a key Latchkey does not publish"))?;
    if alg != header.alg {
        return Err(invalid("the access token's alg is not its key's"));
    }
    let config = &guard.inner.config;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    match &config.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    let claims = Arc::new(
        jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    invalid("the access token has expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    invalid("the access token was not issued for this API")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    invalid("the access token was issued by another server")
                }
                _ => invalid("the access token's signature or claims are invalid"),
            })?
            .claims,
    );
    guard
        .inner
        .keys
        .write()
        .expect("keys lock")
        .remember(digest, claims.clone());
    Ok(claims)
}

/// RFC 9449 §7.1: one proof of the bound key, for this request and this token, never seen
/// before in this process.
fn proof(guard: &Guard, parts: &Parts, token: &str, jkt: &str) -> Result<(), Rejection> {
    let bad = |d: &'static str| Rejection::new("invalid_dpop_proof", d, true);
    let mut values = parts.headers.get_all("dpop").iter();
    let proof = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_err(|_| bad("the DPoP header is not text"))?,
        (None, _) => return Err(bad("a DPoP-bound token needs a DPoP proof")),
        (Some(_), Some(_)) => return Err(bad("send one DPoP proof")),
    };
    let url = request_url(guard, parts).ok_or_else(|| bad("the request has no Host"))?;
    let expected = latchkey_dpop::Expected {
        method: parts.method.as_str(),
        url: &url,
        access_token: Some(token),
        require_nonce: false,
    };
    let now = now_ms();
    // This API issues no nonces; one the client carries from elsewhere changes nothing.
    let checked = latchkey_dpop::verify(proof, &expected, PROOF_WINDOW, |_| true, now).map_err(
        |e| match e {
            latchkey_dpop::ProofError::Invalid(d) => bad(d),
            latchkey_dpop::ProofError::UseNonce => bad("the DPoP proof's nonce is not accepted"),
        },
    )?;
    if checked.jkt != jkt {
        return Err(bad(
            "the DPoP proof is by another key than the token is bound to",
        ));
    }
    let mut seen = guard.inner.proofs.lock().expect("proofs lock");
    if seen.len() >= MAX_PROOFS {
        seen.retain(|_, until| *until > now);
    }
    if seen.len() >= MAX_PROOFS {
        // Refusing is safer than forgetting proofs that could still be replayed.
        return Err(bad("too many DPoP proofs in flight: try again"));
    }
    if seen.insert(checked.jti, checked.usable_until).is_some() {
        return Err(bad("this DPoP proof was used before"));
    }
    Ok(())
}

/// Forgets revocations older than `remember`: their tokens have expired.
pub(crate) fn forget_old(guard: &Guard, remember: Duration) {
    guard
        .inner
        .revoked
        .write()
        .expect("revoked lock")
        .retain(|_, at| at.elapsed() < remember);
}
