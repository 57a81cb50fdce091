//! DPoP (RFC 9449): this device's key, and the proofs that every token request and API call
//! carries. The private key lives only in the keychain entry of its account; a refresh token
//! copied off this machine without it is refused by the server (and the family killed).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};
use p256::pkcs8::DecodePrivateKey;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::{Error, Result, Secret};

/// The proof algorithm this client signs with.
pub const ALG: &str = "ES256";

/// One account's device key: a P-256 key pair.
pub struct DeviceKey {
    pkcs8: Secret<Vec<u8>>,
    encoding: EncodingKey,
    jwk: Jwk,
    thumbprint: String,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", self.thumbprint)
    }
}

/// The claims of a proof. Public so tests can craft the bad ones a server must refuse.
#[derive(Debug, Clone, Serialize)]
pub struct ProofClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// `htu`: the URL without query and fragment (§4.2).
fn target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

impl DeviceKey {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        loop {
            rand::rngs::OsRng.fill_bytes(&mut seed);
            // A scalar outside the curve order is astronomically rare; draw again if so.
            let der = p256::SecretKey::from_slice(&seed)
                .ok()
                .and_then(|k| p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&k).ok());
            if let Some(der) = der {
                if let Ok(key) = Self::from_pkcs8(der.as_bytes().to_vec()) {
                    return key;
                }
            }
        }
    }

    fn from_pkcs8(der: Vec<u8>) -> Result<Self> {
        let damaged =
            || Error::Config("the device key in the keychain is damaged; sign in again".into());
        p256::SecretKey::from_pkcs8_der(&der).map_err(|_| damaged())?;
        let encoding = EncodingKey::from_ec_der(&der);
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|_| damaged())?;
        // Only the members of the public key: no `alg`, `use` or `kid` in a proof's jwk.
        let jwk = Jwk {
            common: Default::default(),
            algorithm: jwk.algorithm,
        };
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| damaged())?;
        Ok(Self {
            pkcs8: Secret::new(der),
            encoding,
            jwk,
            thumbprint,
        })
    }

    /// The key as kept in the keychain entry (base64 PKCS#8).
    pub fn export(&self) -> Secret<String> {
        Secret::new(STANDARD.encode(self.pkcs8.expose()))
    }

    pub fn import(text: &str) -> Result<Self> {
        let der = STANDARD.decode(text).map_err(|_| {
            Error::Config("the device key in the keychain is damaged; sign in again".into())
        })?;
        Self::from_pkcs8(der)
    }

    /// The SHA-256 JWK thumbprint (RFC 7638) that the server binds tokens to.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A fresh proof for one request, issued at `iat` (seconds); `access_token` for a
    /// resource request (`ath`).
    pub fn proof(
        &self,
        iat: i64,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        self.sign(&ProofClaims {
            jti: URL_SAFE_NO_PAD.encode(jti),
            htm: method.to_string(),
            htu: target(url),
            iat,
            ath: access_token.map(|t| URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()))),
            nonce: nonce.map(str::to_string),
        })
    }

    /// Signs the given claims as a proof.
    pub fn sign(&self, claims: &ProofClaims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("an ES256 key from this module signs")
    }
}

/// Each server's latest `DPoP-Nonce` (by origin), for the next proof sent there.
#[derive(Default)]
pub struct NonceCache(Mutex<HashMap<String, String>>);

fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

impl NonceCache {
    pub fn get(&self, url: &str) -> Option<String> {
        self.0.lock().ok()?.get(&origin(url)).cloned()
    }

    pub fn remember(&self, url: &str, headers: &reqwest::header::HeaderMap) {
        if let Some(n) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            if let Ok(mut map) = self.0.lock() {
                map.insert(origin(url), n.to_string());
            }
        }
    }
}

/// `oauth2`'s HTTP client with a DPoP proof on every token request. When the server asks for a
/// nonce (`use_dpop_nonce`, §8), the request is sent once more with it.
pub struct ProvingClient<'a> {
    pub http: &'a reqwest::Client,
    pub key: Option<&'a DeviceKey>,
    pub nonces: &'a NonceCache,
    pub clock: &'a dyn Clock,
}

fn copy(request: &HttpRequest) -> HttpRequest {
    let mut out = HttpRequest::new(request.body().clone());
    *out.method_mut() = request.method().clone();
    *out.uri_mut() = request.uri().clone();
    *out.headers_mut() = request.headers().clone();
    out
}

impl<'c> AsyncHttpClient<'c> for ProvingClient<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let Some(key) = self.key else {
                return self.http.call(request).await;
            };
            let mut retried = false;
            loop {
                let mut attempt = copy(&request);
                let url = attempt.uri().to_string();
                let proof = key.proof(
                    self.clock.now_secs(),
                    attempt.method().as_str(),
                    &url,
                    None,
                    self.nonces.get(&url).as_deref(),
                );
                attempt.headers_mut().insert(
                    "dpop",
                    proof
                        .parse()
                        .expect("a compact JWS is a valid header value"),
                );
                let response = self.http.call(attempt).await?;
                self.nonces.remember(&url, response.headers());
                let asks_nonce = response.status() == reqwest::StatusCode::BAD_REQUEST
                    && serde_json::from_slice::<serde_json::Value>(response.body())
                        .is_ok_and(|b| b["error"] == "use_dpop_nonce");
                if asks_nonce && !retried && response.headers().contains_key("dpop-nonce") {
                    retried = true;
                    continue;
                }
                return Ok(response);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_the_keychain_and_signs_verifiable_proofs() {
        let key = DeviceKey::generate();
        let again = DeviceKey::import(key.export().expose()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        assert_eq!(key.thumbprint().len(), 43);
        let proof = again.proof(
            1_796_000_000,
            "POST",
            "https://as.example/token?x=1",
            Some("at"),
            None,
        );
        let header = jsonwebtoken::decode_header(&proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(&proof, &key, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["htu"], "https://as.example/token");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["iat"], 1_796_000_000);
        assert!(claims["ath"].is_string());
        assert!(!format!("{:?}", again).contains(again.export().expose()));
    }
}
