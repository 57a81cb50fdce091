//! JWTs: access tokens (RFC 9068 profile) and OpenID Connect ID tokens.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::keys::{ActiveKey, KeyRing};
use crate::scope;
use crate::secret::new_jti;

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The resources an access token is for (RFC 9068 §2.2, RFC 7519 §4.1.3): a single string
/// when there is one, as most libraries expect, else an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OneOrMany", into = "OneOrMany")]
pub struct Audience(pub Vec<String>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Audience {
    fn from(v: OneOrMany) -> Self {
        match v {
            OneOrMany::One(one) => Audience(vec![one]),
            OneOrMany::Many(many) => Audience(many),
        }
    }
}

impl From<Audience> for OneOrMany {
    fn from(mut a: Audience) -> Self {
        if a.0.len() == 1 {
            OneOrMany::One(a.0.remove(0))
        } else {
            OneOrMany::Many(a.0)
        }
    }
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }
}

/// The audience of latchkeyd's account and support APIs, as access tokens name it: the API's
/// base URL, as discovery publishes it (`latchkey_account_api`).
pub fn api_audience(issuer: &str) -> String {
    format!("{issuer}/api/v1")
}

/// What a token with `scope` may be used for: the issuer's userinfo with `openid`, the
/// account and support APIs with `account` or `support`. A token for neither names the
/// issuer, so that no other resource takes it for its own.
pub fn audience(issuer: &str, scope: &str) -> Audience {
    let mut aud = Vec::new();
    if scope::contains(scope, scope::OPENID) {
        aud.push(issuer.to_string());
    }
    if scope::contains(scope, scope::ACCOUNT) || scope::contains(scope, scope::SUPPORT) {
        aud.push(api_audience(issuer));
    }
    if aud.is_empty() {
        aud.push(issuer.to_string());
    }
    Audience(aud)
}

/// The claims of an access token (RFC 9068 §2.2). `sid` names the session of a user's token,
/// so revoking the session revokes the token for every check that consults the database; a
/// service account's token (`client_credentials`) has none, and its `sub` is its client id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 9449 §6.1: the thumbprint of the key the token is bound to (DPoP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        scope::contains(&self.scope, scope)
    }
}

#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    pub sid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot serialize a token: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("cannot sign a token")]
    Sign(#[from] aws_lc_rs::error::Unspecified),
}

/// Why a presented access token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongType,
}

pub struct AccessTokenInput<'a> {
    pub issuer: &'a str,
    /// The user, or for a service account's token its client id (RFC 9068 §2.2).
    pub subject: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// The user's session; none for a service account's token.
    pub session_id: Option<&'a str>,
    pub ttl_secs: u64,
    /// Bind the token to this key thumbprint (the request's DPoP proof).
    pub jkt: Option<&'a str>,
}

pub fn mint_access_token(
    keys: &KeyRing,
    input: &AccessTokenInput<'_>,
    now: Millis,
) -> Result<String, TokenError> {
    let key = keys.active();
    let iat = now.div_euclid(1000);
    let claims = AccessClaims {
        iss: input.issuer.to_string(),
        sub: input.subject.to_string(),
        aud: audience(input.issuer, input.scope),
        exp: iat + input.ttl_secs as i64,
        iat,
        jti: new_jti(),
        client_id: input.client_id.to_string(),
        scope: input.scope.to_string(),
        sid: input.session_id.map(str::to_string),
        cnf: input.jkt.map(|jkt| Confirmation {
            jkt: jkt.to_string(),
        }),
    };
    compact(&key, key.access_header(), &claims)
}

/// JWS compact serialization (RFC 7515 §7.1): header.claims.signature, each base64url.
fn compact(key: &ActiveKey, header: &str, claims: &impl Serialize) -> Result<String, TokenError> {
    let claims = serde_json::to_vec(claims)?;
    // Room for everything: base64 is 4/3 of its input, and a signature is at most 64 bytes.
    let mut token = String::with_capacity(header.len() + claims.len() * 4 / 3 + 96);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

/// Any other JWS latchkeyd signs with its token keys (audit checkpoints), of type `typ`.
pub fn sign_jws(keys: &KeyRing, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
    let key = keys.active();
    compact(&key, &key.header(typ), claims)
}

pub fn mint_id_token(keys: &KeyRing, claims: &IdClaims<'_>) -> Result<String, TokenError> {
    let key = keys.active();
    compact(&key, key.id_header(), claims)
}

/// Checks type, signature and issuer. Expiry is the caller's to judge against its clock, so
/// introspection can still say *why* a token is inactive.
pub fn verify_access_token(
    keys: &KeyRing,
    issuer: &str,
    token: &str,
) -> Result<AccessClaims, Invalid> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(Invalid::WrongType);
    }
    let kid = header.kid.ok_or(Invalid::UnknownKey)?;
    let (alg, key) = keys.verifying_key(&kid).ok_or(Invalid::UnknownKey)?;
    if alg != header.alg {
        return Err(Invalid::BadSignature);
    }
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Invalid::BadSignature,
            _ => Invalid::Malformed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_names_what_the_scope_reaches() {
        let iss = "https://login.example.com";
        let one = audience(iss, "openid email offline_access");
        assert_eq!(serde_json::to_value(&one).unwrap(), iss);
        let api = audience(iss, "openid account");
        assert_eq!(
            serde_json::to_value(&api).unwrap(),
            serde_json::json!([iss, "https://login.example.com/api/v1"])
        );
        assert!(audience(iss, "support").contains(&api_audience(iss)));
        assert!(!audience(iss, "support").contains(iss));
        assert_eq!(audience(iss, "offline_access").0, [iss]);
        let back: Audience = serde_json::from_value(serde_json::json!("x")).unwrap();
        assert_eq!(back.0, ["x"]);
    }
}
