//! Secrets and how they are made and kept: random opaque tokens, their hashes (the only form that
//! reaches the database), and a wrapper whose `Debug` never prints the value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

pub use latchkey_proto::Secret;

/// What kind of opaque credential a token is; the prefix lets secret scanners recognise leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    RefreshToken,
    AuthorizationCode,
    ClientSecret,
    Csrf,
    /// RFC 8628 `device_code`: what the polling device holds.
    DeviceCode,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::RefreshToken => "lkrt_",
            TokenKind::AuthorizationCode => "lkac_",
            TokenKind::ClientSecret => "lkcs_",
            TokenKind::Csrf => "lkcf_",
            TokenKind::DeviceCode => "lkdc_",
        }
    }
}

/// Random bytes from aws-lc's DRBG, the one source of randomness for secrets and keys: seeded
/// from the operating system, reseeded after a fork (and a VM snapshot, where the kernel
/// reports one), with per-thread state, so a token costs no `getrandom` system call (two of
/// them were a third of the refresh path's system calls).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // aws-lc aborts the process rather than return unseeded bytes; an error here is unreachable.
    aws_lc_rs::rand::fill(&mut bytes).expect("aws-lc's random generator failed");
    bytes
}

/// 256 random bits, base64url-encoded behind the kind's prefix.
pub fn new_token(kind: TokenKind) -> Secret<String> {
    let bytes: [u8; 32] = random_bytes();
    Secret::new(format!(
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

/// A refresh token names its row and proves possession: `lkrt_` + base64url(row id as 8
/// bytes big-endian, then 32 random bytes). Only the SHA-256 of the random part is stored. The
/// row id lets the server find the row by primary key; a random-keyed hash index instead cost
/// a B-tree page write on every rotation (docs/BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRef {
    pub id: i64,
    pub secret_hash: Vec<u8>,
}

/// 256 random bits for a new refresh token, and the hash to store.
pub fn new_refresh_secret() -> (Secret<[u8; 32]>, Vec<u8>) {
    let bytes: [u8; 32] = random_bytes();
    let hash = Sha256::digest(bytes).to_vec();
    (Secret::new(bytes), hash)
}

pub fn refresh_token(id: i64, secret: &Secret<[u8; 32]>) -> Secret<String> {
    let mut raw = Vec::with_capacity(40);
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(secret.expose());
    Secret::new(format!(
        "{}{}",
        TokenKind::RefreshToken.prefix(),
        URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// `None` for anything that is not a well-formed refresh token.
pub fn parse_refresh_token(token: &str) -> Option<RefreshTokenRef> {
    let body = token.strip_prefix(TokenKind::RefreshToken.prefix())?;
    let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
    if raw.len() != 40 {
        return None;
    }
    let (id, secret) = raw.split_at(8);
    Some(RefreshTokenRef {
        id: i64::from_be_bytes(id.try_into().ok()?),
        secret_hash: Sha256::digest(secret).to_vec(),
    })
}

/// RFC 8628 §6.1: the letters of a user code are consonants only (no vowels, so no words; no
/// 0/O or 1/I to confuse), 20 of them: 8 letters are 34 bits, against at most a handful of
/// guesses per code and per address (`/device` is throttled) over the code's few minutes.
const USER_CODE_LETTERS: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// A new user code, in its stored form (8 letters, `WDJBMJHT`; shown by [`display_user_code`]).
pub fn new_user_code() -> String {
    let mut letters = Vec::with_capacity(USER_CODE_LEN);
    while letters.len() < USER_CODE_LEN {
        let bytes: [u8; 16] = random_bytes();
        // 240 = 12 × 20: bytes above it are dropped so that every letter is as likely.
        letters.extend(
            bytes
                .iter()
                .filter(|b| **b < 240)
                .map(|b| USER_CODE_LETTERS[usize::from(*b) % USER_CODE_LETTERS.len()] as char),
        );
    }
    letters.truncate(USER_CODE_LEN);
    letters.into_iter().collect()
}

/// A user code (stored form) as people read it: two groups of four, `WDJB-MJHT`.
pub fn display_user_code(code: &str) -> String {
    let (first, second) = code.split_at(code.len().min(USER_CODE_LEN / 2));
    format!("{first}-{second}")
}

/// A user code as typed (any case, with or without the dash or spaces) in the form it is
/// stored and compared; `None` if it cannot be a user code at all.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_LETTERS.contains(&b)))
        .then_some(code)
}

/// A random identifier that is not a secret (sessions, requests, events): UUIDv7 sorts by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An access token's `jti`: unique, with no order to keep, so a UUIDv4 from `random_bytes`
/// (one per grant, without the system call `now_v7` makes).
pub fn new_jti() -> String {
    uuid::Builder::from_random_bytes(random_bytes())
        .into_uuid()
        .to_string()
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
    fn refresh_tokens_carry_their_row_and_256_secret_bits() {
        let (secret, hash) = new_refresh_secret();
        let token = refresh_token(42, &secret);
        assert!(token.expose().starts_with("lkrt_"));
        let parsed = parse_refresh_token(token.expose()).unwrap();
        assert_eq!(
            parsed,
            RefreshTokenRef {
                id: 42,
                secret_hash: hash
            }
        );
        assert_eq!(parse_refresh_token("lkrt_short"), None);
        assert_eq!(parse_refresh_token("lkac_AAAA"), None);
        let mut forged = token.expose().clone();
        forged.replace_range(20..21, if &forged[20..21] == "A" { "B" } else { "A" });
        assert_ne!(
            parse_refresh_token(&forged).unwrap().secret_hash,
            parsed.secret_hash
        );
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

    #[test]
    fn user_codes_are_8_unambiguous_letters_typed_in_any_case() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), 8, "{code}");
            assert!(
                !code.contains(['A', 'E', 'I', 'O', 'U', '0', '1']),
                "{code}"
            );
            let shown = display_user_code(&code);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(normalize_user_code(&shown).unwrap(), code);
        }
        assert_eq!(
            normalize_user_code(" wdjb-mjht ").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(
            normalize_user_code("WDJB MJHT").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(normalize_user_code("WDJB-MJH0"), None);
        assert_eq!(normalize_user_code("AEIO-UAEI"), None);
    }
}
