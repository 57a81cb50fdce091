//! Signing keys: kept in the database (private halves encrypted with the master key), loaded
//! into memory, published in the JWKS until every token they signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{self, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;
use sqlx::Row;

use crate::clock::Millis;
use crate::config::SigningAlg;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::secret::{random_bytes, Secret};
use crate::store::audit::{self, Actor};
use crate::store::{Origin, StoreError};
use crate::tokens::ACCESS_TOKEN_TYP;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("signing key {0} cannot be decrypted: is this the master key it was created with?")]
    Decrypt(String),
    #[error("signing key {kid} is unusable: {message}")]
    Malformed { kid: String, message: String },
}

/// The key that signs new tokens, parsed once: `jsonwebtoken::encode` would re-parse the
/// PKCS#8 document and re-derive the public key for every token, which doubled the cost of
/// each refresh (docs/BENCHMARKS.md). Signing is aws-lc-rs, jsonwebtoken's backend here;
/// verification stays with jsonwebtoken.
pub struct ActiveKey {
    pub kid: String,
    pub alg: Algorithm,
    signer: Signer,
    /// The encoded JWS headers of the two token types it signs, made once: they depend on
    /// the key alone.
    access_header: String,
    id_header: String,
}

enum Signer {
    Ed25519(signature::Ed25519KeyPair),
    P256(signature::EcdsaKeyPair),
}

impl ActiveKey {
    fn parse(kid: String, alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let malformed = |e: aws_lc_rs::error::KeyRejected| KeyError::Malformed {
            kid: kid.clone(),
            message: format!("private key: {e}"),
        };
        let signer = match alg {
            Algorithm::ES256 => Signer::P256(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                )
                .map_err(malformed)?,
            ),
            _ => Signer::Ed25519(signature::Ed25519KeyPair::from_pkcs8(der).map_err(malformed)?),
        };
        let encoded = |typ: &str| {
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some(kid.clone());
            header.typ = Some(typ.into());
            serde_json::to_vec(&header).map(|json| URL_SAFE_NO_PAD.encode(json))
        };
        let malformed_header = |e: serde_json::Error| KeyError::Malformed {
            kid: kid.clone(),
            message: format!("header: {e}"),
        };
        let access_header = encoded(ACCESS_TOKEN_TYP).map_err(malformed_header)?;
        let id_header = encoded("JWT").map_err(malformed_header)?;
        Ok(Self {
            kid,
            alg,
            signer,
            access_header,
            id_header,
        })
    }

    /// The base64url JWS header of a token of type `typ` signed by this key.
    pub fn header(&self, typ: &str) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.into());
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a JWS header serializes"))
    }

    /// The base64url JWS header of an access token (`typ` `at+jwt`, RFC 9068) signed by this key.
    pub fn access_header(&self) -> &str {
        &self.access_header
    }

    /// The base64url JWS header of an ID token signed by this key.
    pub fn id_header(&self) -> &str {
        &self.id_header
    }

    /// The JWS signature of `message` (RFC 7515), raw: 64 bytes for EdDSA and for ES256 (r || s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        Ok(match &self.signer {
            Signer::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Signer::P256(key) => key
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)?
                .as_ref()
                .to_vec(),
        })
    }
}

struct KeySet {
    active: Arc<ActiveKey>,
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Arc<String>,
}

/// Keys in memory, reloaded from the database so that `latchkeyd keys rotate` reaches a running
/// server (and every replica) without a restart.
pub struct KeyRing {
    db: Db,
    master: MasterKey,
    /// How long a retired key stays published: the longest lifetime of a token it signed.
    publish_after_retire: Millis,
    set: RwLock<Arc<KeySet>>,
}

fn algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "EdDSA" => Some(Algorithm::EdDSA),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

/// A fresh PKCS#8 private key for `alg`.
fn generate_pkcs8(alg: SigningAlg) -> Secret<Vec<u8>> {
    loop {
        let seed: [u8; 32] = random_bytes();
        let der = match alg {
            // PKCS#8 v1 (no embedded public key): the form jsonwebtoken's JWK export expects.
            SigningAlg::EdDsa => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: seed,
                public_key: None,
            }
            .to_pkcs8_der()
            .ok()
            .map(|d| d.as_bytes().to_vec()),
            // A scalar outside the curve order is astronomically rare; draw again if it happens.
            SigningAlg::Es256 => p256::SecretKey::from_slice(&seed)
                .ok()
                .and_then(|k| p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&k).ok())
                .map(|d| d.as_bytes().to_vec()),
        };
        if let Some(der) = der {
            return Secret::new(der);
        }
    }
}

fn encoding_key(alg: Algorithm, der: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(der),
        _ => EncodingKey::from_ed_der(der),
    }
}

fn public_jwk(
    kid: &str,
    alg: Algorithm,
    key: &EncodingKey,
) -> Result<Jwk, jsonwebtoken::errors::Error> {
    let mut jwk = Jwk::from_encoding_key(key, alg)?;
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::EdDSA,
    });
    Ok(jwk)
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
    /// `active` (signs new tokens), `next` (published, signs once the active one retires) or
    /// `retired` (verifies only, until its tokens have expired).
    pub state: &'static str,
}

/// Adds a new signing key. It is published at once but signs only after `activation_delay`:
/// until then the current key goes on signing, so every replica (reloading keys on its own
/// schedule) and every relying party (caching the JWKS) knows the new key before its first
/// token. The current keys retire then and stay published until their tokens have expired.
pub async fn rotate(
    db: &Db,
    master: &MasterKey,
    alg: SigningAlg,
    now: Millis,
    activation_delay: Millis,
    by: Actor<'_>,
) -> Result<KeyInfo, KeyError> {
    let kid = format!(
        "{}-{}",
        alg.as_str().to_lowercase(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let der = generate_pkcs8(alg);
    let jws_alg = algorithm(alg.as_str()).expect("supported algorithm");
    let jwk = public_jwk(&kid, jws_alg, &encoding_key(jws_alg, der.expose())).map_err(|e| {
        KeyError::Malformed {
            kid: kid.clone(),
            message: format!("public key: {e}"),
        }
    })?;
    let sealed = master.seal(der.expose(), kid.as_bytes());
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL OR retired_at > $1",
    )
    .bind(now + activation_delay)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&kid)
    .bind(alg.as_str())
    .bind(&sealed)
    .bind(serde_json::to_string(&jwk).expect("a JWK serializes"))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: "keys.rotate",
            target_user_id: None,
            target_session_id: None,
            reason: None,
            origin: &Origin::default(),
            details: serde_json::json!({
                "kid": kid,
                "alg": alg.as_str(),
                "signs_from": now + activation_delay,
            }),
        },
        now,
    )
    .await
    .map_err(|e| match e {
        StoreError::Db(e) => KeyError::Db(e),
        other => KeyError::Malformed {
            kid: kid.clone(),
            message: other.to_string(),
        },
    })?;
    tx.commit().await?;
    Ok(KeyInfo {
        kid,
        alg: alg.as_str().into(),
        created_at: now,
        retired_at: None,
        state: "next",
    })
}

pub async fn list(db: &Db, now: Millis) -> Result<Vec<KeyInfo>, KeyError> {
    let rows = sqlx::query(
        "SELECT kid, alg, created_at, retired_at FROM signing_keys \
         ORDER BY CASE WHEN retired_at IS NULL THEN 1 ELSE 0 END, retired_at, created_at, kid",
    )
    .fetch_all(db.read())
    .await?;
    let mut seen_active = false;
    rows.iter()
        .map(|r| {
            let retired_at: Option<i64> = r.try_get("retired_at")?;
            let in_service = retired_at.is_none_or(|t| t > now);
            let state = match (in_service, seen_active) {
                (false, _) => "retired",
                (true, false) => "active",
                (true, true) => "next",
            };
            seen_active |= in_service;
            Ok(KeyInfo {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                created_at: r.try_get("created_at")?,
                retired_at,
                state,
            })
        })
        .collect()
}

/// The public half of signing key `kid`, worked out from its private half as sealed with the
/// master key, never read from the stored JWK: a key row written into the database by someone
/// without the master key is not taken. `None` if there is no such key or it does not open.
pub async fn genuine_public_key(
    db: &Db,
    master: &MasterKey,
    kid: &str,
) -> Result<Option<signature::UnparsedPublicKey<Vec<u8>>>, KeyError> {
    let row = sqlx::query("SELECT alg, private_key FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_optional(db.read())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed: Vec<u8> = row.try_get("private_key")?;
    let Some(der) = master.open(&sealed, kid.as_bytes()) else {
        return Ok(None);
    };
    let alg: String = row.try_get("alg")?;
    Ok(match algorithm(&alg) {
        Some(Algorithm::ES256) => signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.expose(),
        )
        .ok()
        .map(|k| {
            signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                k.public_key().as_ref().to_vec(),
            )
        }),
        Some(Algorithm::EdDSA) => signature::Ed25519KeyPair::from_pkcs8(der.expose())
            .ok()
            .map(|k| {
                signature::UnparsedPublicKey::new(
                    &signature::ED25519,
                    k.public_key().as_ref().to_vec(),
                )
            }),
        _ => None,
    })
}

impl KeyRing {
    /// Loads the keys, creating the first one if the database has none.
    pub async fn load(
        db: Db,
        master: MasterKey,
        alg: SigningAlg,
        publish_after_retire: Millis,
        now: Millis,
    ) -> Result<Self, KeyError> {
        let set = match Self::read_set(&db, &master, publish_after_retire, now).await? {
            Some(set) => set,
            None => {
                rotate(&db, &master, alg, now, 0, Actor::System).await?;
                Self::read_set(&db, &master, publish_after_retire, now)
                    .await?
                    .expect("the key just created is active")
            }
        };
        Ok(Self {
            db,
            master,
            publish_after_retire,
            set: RwLock::new(Arc::new(set)),
        })
    }

    async fn read_set(
        db: &Db,
        master: &MasterKey,
        publish_after_retire: Millis,
        now: Millis,
    ) -> Result<Option<KeySet>, KeyError> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, public_jwk, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY CASE WHEN retired_at IS NULL THEN 1 ELSE 0 END, retired_at, created_at, kid",
        )
        .bind(now - publish_after_retire)
        .fetch_all(db.read())
        .await?;
        let mut active = None;
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        for row in rows {
            let kid: String = row.try_get("kid")?;
            let malformed = |message: String| KeyError::Malformed {
                kid: kid.clone(),
                message,
            };
            let alg_name: String = row.try_get("alg")?;
            let alg = algorithm(&alg_name)
                .ok_or_else(|| malformed(format!("unknown algorithm {alg_name}")))?;
            let jwk: Jwk = serde_json::from_str(&row.try_get::<String, _>("public_jwk")?)
                .map_err(|e| malformed(format!("stored JWK: {e}")))?;
            let decoding = DecodingKey::from_jwk(&jwk)
                .map_err(|e| malformed(format!("verification key: {e}")))?;
            // Of the keys still in service, the one retiring first signs; the next waits for it.
            let in_service = row
                .try_get::<Option<i64>, _>("retired_at")?
                .is_none_or(|t| t > now);
            if active.is_none() && in_service {
                let sealed: Vec<u8> = row.try_get("private_key")?;
                let der = master
                    .open(&sealed, kid.as_bytes())
                    .ok_or_else(|| KeyError::Decrypt(kid.clone()))?;
                active = Some(Arc::new(ActiveKey::parse(kid.clone(), alg, der.expose())?));
            }
            verifying.insert(kid.clone(), (alg, decoding));
            published.push(jwk);
        }
        Ok(active.map(|active| KeySet {
            active,
            verifying,
            jwks: Arc::new(
                serde_json::to_string(&JwkSet { keys: published }).expect("a JWK set serializes"),
            ),
        }))
    }

    /// Re-reads the keys; keeps the current set if the database has no active key.
    pub async fn reload(&self, now: Millis) -> Result<(), KeyError> {
        if let Some(set) =
            Self::read_set(&self.db, &self.master, self.publish_after_retire, now).await?
        {
            *self.set.write().expect("key ring lock") = Arc::new(set);
        }
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().expect("key ring lock").clone()
    }

    pub fn active(&self) -> Arc<ActiveKey> {
        self.current().active.clone()
    }

    pub fn jwks(&self) -> Arc<String> {
        self.current().jwks.clone()
    }

    pub fn verifying_key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.current().verifying.get(kid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_publish() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
            let der = generate_pkcs8(alg);
            let jws_alg = algorithm(alg.as_str()).unwrap();
            let key = encoding_key(jws_alg, der.expose());
            let jwk = public_jwk("k1", jws_alg, &key)
                .unwrap_or_else(|e| panic!("{alg:?} {} {e:?}", der.expose().len()));
            let json = serde_json::to_string(&jwk).unwrap();
            let jwk: Jwk = serde_json::from_str(&json).unwrap();
            let decoding = DecodingKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("{json} {e:?}"));
            let mut header = jsonwebtoken::Header::new(jws_alg);
            header.kid = Some("k1".into());
            let token =
                jsonwebtoken::encode(&header, &serde_json::json!({"sub": "x"}), &key).unwrap();
            let mut v = jsonwebtoken::Validation::new(jws_alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &v).unwrap();
        }
    }
}
