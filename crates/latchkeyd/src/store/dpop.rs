//! DPoP proof ids already seen (RFC 9449 §11.1): a proof is good for one request.

use sha2::{Digest, Sha256};

use super::Result;
use crate::db::Db;
use crate::dpop::Proof;

/// Records the proof's id; `false` if it was presented before (here or on another replica).
/// Kept until the proof would be refused as too old anyway.
pub async fn first_use(db: &Db, proof: &Proof) -> Result<bool> {
    let mut hash = Sha256::new();
    hash.update(proof.jkt.as_bytes());
    hash.update([0]);
    hash.update(proof.jti.as_bytes());
    let done = sqlx::query(
        "INSERT INTO dpop_proofs (proof_hash, expires_at) VALUES ($1, $2) ON CONFLICT (proof_hash) DO NOTHING",
    )
    .bind(hash.finalize().to_vec())
    .bind(proof.usable_until)
    .execute(db.write())
    .await?;
    Ok(done.rows_affected() == 1)
}
