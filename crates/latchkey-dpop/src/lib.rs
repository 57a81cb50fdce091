//! DPoP (RFC 9449): proof that a client holds the private key its tokens are bound to.
//!
//! A proof is a JWT the client signs for one request (method, URL, time, a unique id, and for a
//! resource the hash of the access token), carrying its public key in the header. [`verify`]
//! checks one proof; the caller checks that its id was not seen before, and whether a server
//! nonce it carries is one of its own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The proof algorithms accepted (and advertised as `dpop_signing_alg_values_supported`).
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];
const TYP: &str = "dpop+jwt";
/// Larger than any honest proof (a P-256 key and a URL), small enough to parse cheaply.
const MAX_PROOF_BYTES: usize = 4096;
/// JWK members that only a private key has.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Is this a SHA-256 JWK thumbprint, base64url without padding?
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `ath`: the base64url SHA-256 of the access token a resource request carries.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The SHA-256 JWK thumbprint of the key (RFC 7638): what tokens are bound to.
    pub jkt: String,
    pub jti: String,
    /// Until when its `jti` must be remembered (past the last moment any replica would still
    /// accept the proof), in ms.
    pub usable_until: Millis,
}

/// Why a proof is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// `invalid_dpop_proof`, with what is wrong.
    Invalid(&'static str),
    /// `use_dpop_nonce`: the proof must carry a fresh server nonce (sent with the error).
    UseNonce,
}

/// What the request a proof is for looks like.
pub struct Expected<'a> {
    pub method: &'a str,
    /// The URL without query or fragment, as the client addressed it.
    pub url: &'a str,
    /// For a resource request: the access token the proof must be bound to (`ath`).
    pub access_token: Option<&'a str>,
    pub require_nonce: bool,
}

/// How old a proof may be, and how far ahead the client's clock may run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub max_age_secs: u64,
    pub clock_skew_secs: u64,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Checks one `DPoP` header value against the request it came with.
///
/// `nonce_accepted` says whether a server nonce the proof carries is one the caller issued.
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    window: Window,
    nonce_accepted: impl Fn(&str) -> bool,
    now: Millis,
) -> Result<Proof, ProofError> {
    use ProofError::Invalid;
    if proof.len() > MAX_PROOF_BYTES {
        return Err(Invalid("the DPoP proof is too large"));
    }
    let header_part = proof
        .split('.')
        .next()
        .filter(|_| proof.split('.').count() == 3)
        .ok_or(Invalid("the DPoP proof is not a compact JWS"))?;
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(Invalid("the DPoP proof's header is not base64url JSON"))?;
    if header["typ"] != TYP {
        return Err(Invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg = match header["alg"].as_str() {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(Invalid("the DPoP proof's alg must be ES256 or EdDSA")),
    };
    let jwk_value = header
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or(Invalid("the DPoP proof's header has no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_value.get(m).is_some()) {
        return Err(Invalid("the DPoP proof's jwk contains a private key"));
    }
    let jwk: Jwk = serde_json::from_value(jwk_value.clone())
        .map_err(|_| Invalid("the DPoP proof's jwk is not a public key"))?;
    // Coordinates of exactly the curve's size: the verifier would otherwise truncate (or panic
    // on) a short or long one, and one key could then go by many thumbprints.
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() == 32);
    let key_fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => {
            p.curve == EllipticCurve::P256 && coordinate(&p.x) && coordinate(&p.y)
        }
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519 && coordinate(&p.x)
        }
        _ => false,
    };
    if !key_fits {
        return Err(Invalid("the DPoP proof's jwk does not fit its alg"));
    }
    let key =
        DecodingKey::from_jwk(&jwk).map_err(|_| Invalid("the DPoP proof's jwk is not usable"))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                Invalid("the DPoP proof's signature does not verify with its jwk")
            }
            _ => Invalid("the DPoP proof lacks jti, htm, htu or iat, or is malformed"),
        })?
        .claims;

    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(Invalid("the DPoP proof's jti must be 1 to 256 characters"));
    }
    if claims.htm != expected.method {
        return Err(Invalid("the DPoP proof is for another HTTP method (htm)"));
    }
    if !same_target(&claims.htu, expected.url) {
        return Err(Invalid("the DPoP proof is for another URL (htu)"));
    }
    // Bounds on our side of each comparison: `iat` is the client's and may be any i64.
    let now_secs = now.div_euclid(1000);
    let (max_age, skew) = (window.max_age_secs as i64, window.clock_skew_secs as i64);
    if claims.iat > now_secs + skew {
        return Err(Invalid("the DPoP proof's iat is in the future"));
    }
    if claims.iat < now_secs - max_age {
        return Err(Invalid("the DPoP proof is too old (iat)"));
    }
    // A nonce the client sent must be good even where none is required: it was ours once.
    match &claims.nonce {
        Some(n) if !nonce_accepted(n) => return Err(ProofError::UseNonce),
        None if expected.require_nonce => return Err(ProofError::UseNonce),
        _ => {}
    }
    if let Some(token) = expected.access_token {
        if claims.ath.as_deref() != Some(access_token_hash(token).as_str()) {
            return Err(Invalid(
                "the DPoP proof's ath is not the hash of this access token",
            ));
        }
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| Invalid("the DPoP proof's jwk has no thumbprint"))?;
    Ok(Proof {
        jkt,
        jti: claims.jti,
        // Kept past the last moment any replica would accept it, clock differences included.
        usable_until: (claims.iat + max_age + 2 * skew + 60) * 1000,
    })
}

/// `htu` names the endpoint: scheme, host, port and path compared after URL normalisation
/// (default ports, letter case of scheme and host), query and fragment ignored (§4.3).
fn same_target(htu: &str, expected: &str) -> bool {
    let strip = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(htu), strip(expected)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_normalised_without_query() {
        assert!(same_target(
            "HTTP://Example.com:80/token?x=1#f",
            "http://example.com/token"
        ));
        assert!(!same_target(
            "http://example.com/token/",
            "http://example.com/token"
        ));
        assert!(!same_target(
            "https://example.com/token",
            "http://example.com/token"
        ));
        assert!(!same_target("not a url", "http://example.com/token"));
    }
}
