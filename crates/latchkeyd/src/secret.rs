//! Secrets and how they are made and kept: random opaque tokens, their hashes (the only form that
//! reaches the database), and a wrapper whose `Debug` never prints the value.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A value that must never reach a log or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What kind of opaque credential a token is; the prefix lets secret scanners recognise leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    RefreshToken,
    AuthorizationCode,
    ClientSecret,
    Csrf,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::RefreshToken => "lkrt_",
            TokenKind::AuthorizationCode => "lkac_",
            TokenKind::ClientSecret => "lkcs_",
            TokenKind::Csrf => "lkcf_",
        }
    }
}

/// 256 random bits from the operating system, base64url-encoded behind the kind's prefix.
pub fn new_token(kind: TokenKind) -> Secret<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret(format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The form in which a token is stored and looked up. Tokens carry 256 bits of entropy, so a
/// fast hash is enough: there is nothing to brute-force.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random identifier that is not a secret (sessions, requests, events): UUIDv7 sorts by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let s = new_token(TokenKind::RefreshToken);
        let shown = format!("{s:?}");
        assert!(!shown.contains(&s.expose()[5..]), "{shown}");
        assert_eq!(shown, "Secret(<redacted>)");
    }

    #[test]
    fn tokens_carry_256_bits_and_their_prefix() {
        let t = new_token(TokenKind::RefreshToken).into_inner();
        assert!(t.starts_with("lkrt_"));
        let raw = URL_SAFE_NO_PAD.decode(&t[5..]).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(t, new_token(TokenKind::RefreshToken).into_inner());
    }

    #[test]
    fn pkce_s256_follows_rfc7636_appendix_b() {
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
    }
}
