//! DPoP (RFC 9449) at latchkeyd: the proof checks (`latchkey_dpop`, shared with the resource
//! side) under this server's policy and nonces. The caller checks that a proof's id was not
//! seen before (`store::dpop`), which holds across replicas because the database decides.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use latchkey_dpop::{access_token_hash, is_thumbprint, Expected, Proof, ProofError, ALGS};

use crate::clock::Millis;
use crate::config::DpopPolicy;
use crate::crypto::MasterKey;
use crate::secret::Secret;

/// Checks one `DPoP` header value against the request it came with.
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    policy: &DpopPolicy,
    nonces: &Nonces,
    now: Millis,
) -> Result<Proof, ProofError> {
    let window = latchkey_dpop::Window {
        max_age_secs: policy.proof_max_age_secs,
        clock_skew_secs: policy.clock_skew_secs,
    };
    latchkey_dpop::verify(proof, expected, window, |n| nonces.accepts(n, now), now)
}

/// Server nonces (§8) without server state: a time window and its MAC under a key derived from
/// the master key, so every replica issues and accepts the same nonces.
pub struct Nonces {
    key: Secret<[u8; 32]>,
    window_ms: i64,
}

impl Nonces {
    pub fn new(master: &MasterKey, lifetime_secs: u64) -> Self {
        Self {
            key: master.derive("latchkey dpop nonce v1"),
            // A nonce is good in its window and the next, so its lifetime is two windows.
            window_ms: (lifetime_secs as i64 * 1000 / 2).max(1000),
        }
    }

    fn mac(&self, window: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose())
            .expect("HMAC takes a key of any length");
        mac.update(&window.to_be_bytes());
        mac
    }

    pub fn issue(&self, now: Millis) -> String {
        let window = now.div_euclid(self.window_ms);
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.mac(window).finalize().into_bytes()[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn accepts(&self, nonce: &str, now: Millis) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 24 {
            return false;
        }
        let window = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = now.div_euclid(self.window_ms);
        (window == current || window == current - 1)
            && self.mac(window).verify_truncated_left(&bytes[8..]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_live_two_windows_and_cannot_be_forged() {
        let nonces = Nonces::new(&MasterKey::generate(), 300);
        let t = 1_000_000_000_000;
        let n = nonces.issue(t);
        assert!(nonces.accepts(&n, t));
        assert!(nonces.accepts(&n, t + 150_000));
        assert!(!nonces.accepts(&n, t + 300_001));
        let other = Nonces::new(&MasterKey::generate(), 300);
        assert!(!other.accepts(&n, t));
        let mut forged = URL_SAFE_NO_PAD.decode(&n).unwrap();
        forged[0..8].copy_from_slice(&(t / 150_000 + 1).to_be_bytes());
        assert!(!nonces.accepts(&URL_SAFE_NO_PAD.encode(forged), t + 150_000));
    }
}
