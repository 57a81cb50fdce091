//! Signed checkpoints of the audit log: the head's hash and record count at a moment, signed
//! with latchkeyd's token-signing key, and kept outside the database (a file the operator
//! ships elsewhere, the server's log, or `latchkeyd audit checkpoint` run by cron).
//!
//! The keyed chain (`store::audit`) already shows any record edited, inserted or removed in
//! the middle. What it cannot show is a tail cut off, or the whole database swapped for an
//! older copy: a checkpoint says "the log had N records and this was the Nth", so
//! `latchkeyd audit verify --checkpoint FILE` fails if record N is gone or differs. Only
//! someone holding the master key can sign a checkpoint, and only one kept out of their reach
//! protects against them.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::clock::Millis;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::keys::{self, KeyRing};
use crate::store::audit::Anchor;
use crate::tokens;

/// The JWS `typ` of a checkpoint: never taken for a token.
pub const TYP: &str = "latchkey-audit-checkpoint+jwt";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error("cannot write the checkpoint file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{file} line {line}: {problem}")]
    Invalid {
        file: String,
        line: usize,
        problem: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    /// How many records the log had; the last one's sequence number.
    records: i64,
    /// The last record's hash (its link).
    head: String,
    /// When, in milliseconds since the epoch.
    at: Millis,
}

/// A checkpoint, as written: readable fields beside the signed JWS, which alone counts.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    pub records: i64,
    pub head: String,
    #[serde(with = "crate::clock::rfc3339")]
    pub at: Millis,
    pub checkpoint: String,
}

impl Checkpoint {
    /// One line of a checkpoint file.
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serializes")
    }
}

/// Signs the audit log's head as it is now.
pub async fn take(
    db: &Db,
    keys: &KeyRing,
    issuer: &str,
    now: Millis,
) -> Result<Checkpoint, CheckpointError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.read())
        .await?;
    let claims = Claims {
        iss: issuer.to_string(),
        records: head.try_get("seq")?,
        head: head.try_get("hash")?,
        at: now,
    };
    let jws = tokens::sign_jws(keys, TYP, &claims)?;
    Ok(Checkpoint {
        records: claims.records,
        head: claims.head,
        at: now,
        checkpoint: jws,
    })
}

/// Appends a checkpoint to `path` (created 0600), on disk before this returns.
pub fn append(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let failed = |source| CheckpointError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    writeln!(file, "{}", checkpoint.line()).map_err(failed)?;
    file.sync_data().map_err(failed)
}

/// Reads checkpoints (lines as `append` writes them, or bare JWS lines) and checks each one's
/// signature against this server's keys; the anchors they vouch for.
pub async fn read(
    db: &Db,
    master: &MasterKey,
    source: &str,
    text: &str,
) -> Result<Vec<Anchor>, CheckpointError> {
    let mut anchors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let invalid = |problem: String| CheckpointError::Invalid {
            file: source.to_string(),
            line: i + 1,
            problem,
        };
        let jws = if line.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["checkpoint"].as_str().map(str::to_string))
                .ok_or_else(|| invalid("not a checkpoint line".into()))?
        } else {
            line.to_string()
        };
        let claims = verify(db, master, &jws).await?.map_err(invalid)?;
        anchors.push(Anchor {
            records: claims.records,
            head: claims.head,
            at: claims.at,
            source: format!("{source} line {}", i + 1),
        });
    }
    Ok(anchors)
}

/// The claims of a checkpoint whose signature is this server's, or why not.
async fn verify(
    db: &Db,
    master: &MasterKey,
    jws: &str,
) -> Result<Result<Claims, String>, CheckpointError> {
    let mut parts = jws.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Err("not a signed checkpoint (JWS compact form)".into()));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Option<jsonwebtoken::Header> =
        decode(header).and_then(|h| serde_json::from_slice(&h).ok());
    let Some(header) = header.filter(|h| h.typ.as_deref() == Some(TYP)) else {
        return Ok(Err("not a checkpoint (its header is not one)".into()));
    };
    let Some(kid) = header.kid else {
        return Ok(Err("the checkpoint names no signing key".into()));
    };
    let Some(key) = keys::genuine_public_key(db, master, &kid).await? else {
        return Ok(Err(format!(
            "signed by key {kid}, which is not one of this server's keys (a forgery, or another server's checkpoint)"
        )));
    };
    let signed = &jws[..jws.len() - signature.len() - 1];
    let valid = decode(signature).is_some_and(|sig| key.verify(signed.as_bytes(), &sig).is_ok());
    if !valid {
        return Ok(Err(format!(
            "its signature does not verify with key {kid}: the checkpoint was altered or forged"
        )));
    }
    Ok(decode(payload)
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(|| "the checkpoint's content is unreadable".to_string()))
}
