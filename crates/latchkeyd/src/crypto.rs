//! The master key that encrypts signing keys at rest, and password hashing.

use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::{random_bytes, Secret};

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the master key file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key must be 32 bytes, base64-encoded ({0})")]
    Malformed(&'static str),
}

/// Encrypts signing keys in the database, so a copy of the database alone reveals no key.
/// Every replica sharing a database must share this key (`LATCHKEY_MASTER_KEY` or a file).
#[derive(Clone)]
pub struct MasterKey(Secret<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed("not base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| MasterKeyError::Malformed("wrong length"))?;
        Ok(Self(Secret::new(key)))
    }

    pub fn generate() -> Self {
        Self(Secret::new(random_bytes()))
    }

    /// Reads the key file, creating it (mode 0600) with a fresh key on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let shown = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let mut builder = fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder
                        .create(dir)
                        .map_err(|source| MasterKeyError::Create {
                            path: shown.clone(),
                            source,
                        })?;
                }
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(path)
                    .map_err(|source| MasterKeyError::Create {
                        path: shown.clone(),
                        source,
                    })?;
                writeln!(file, "{}", STANDARD.encode(key.0.expose())).map_err(|source| {
                    MasterKeyError::Create {
                        path: shown,
                        source,
                    }
                })?;
                Ok(key)
            }
            Err(source) => Err(MasterKeyError::Read {
                path: shown,
                source,
            }),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose().into())
    }

    /// nonce || ciphertext; `context` binds the ciphertext to its row (e.g. the key id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce: [u8; 24] = random_bytes();
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 over `label`), so every
    /// replica sharing the master key derives the same one.
    pub fn derive(&self, label: &str) -> Secret<[u8; 32]> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.expose())
            .expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        Secret::new(mac.finalize().into_bytes().into())
    }

    /// A key of its own for sealing one kind of secret, derived from this one ([`derive`]).
    ///
    /// [`derive`]: MasterKey::derive
    pub fn subkey(&self, label: &str) -> MasterKey {
        MasterKey(self.derive(label))
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Secret<Vec<u8>>> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, body) = sealed.split_at(24);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
            .map(Secret::new)
    }
}

/// argon2id with the crate's defaults (the OWASP-recommended m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with default parameters accepts any password")
        .to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spent on unknown accounts so that "no such user" takes as long as "wrong password".
pub fn burn_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("latchkey-timing-equaliser"));
    let _ = verify_password(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"private key", b"kid-1");
        assert_eq!(
            key.open(&sealed, b"kid-1").unwrap().expose(),
            b"private key"
        );
        assert!(key.open(&sealed, b"kid-2").is_none());
        assert!(MasterKey::generate().open(&sealed, b"kid-1").is_none());
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("Correct horse", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
