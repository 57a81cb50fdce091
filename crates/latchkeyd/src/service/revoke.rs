//! RFC 7009 token revocation: a client revoking a token it holds.

use crate::clock::Millis;
use crate::db::Db;
use crate::keys::KeyRing;
use crate::store::audit::Actor;
use crate::store::{revocation, Origin, Result};
use crate::tokens;

/// What a revocation request comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRevocation {
    /// Revoked, or nothing to revoke: RFC 7009 §2.2 answers an unknown or already invalid
    /// token as it answers a revoked one.
    Done,
    /// §2.1: the token was issued to another client; nothing was revoked.
    NotYours,
}

/// Revokes `token` for `client_id`. A refresh token ends its whole session (its family, the
/// session's access tokens with it); an access token is revoked alone.
pub async fn revoke_token(
    db: &Db,
    keys: &KeyRing,
    issuer: &str,
    client_id: &str,
    token: &str,
    origin: &Origin,
    now: Millis,
) -> Result<TokenRevocation> {
    if let Some(info) = revocation::refresh_token_info(db, token, now).await? {
        if info.client_id != client_id {
            return Ok(TokenRevocation::NotYours);
        }
        revocation::revoke_session(
            db,
            &info.session_id,
            Actor::Client(client_id),
            "token_revoked",
            origin,
            now,
        )
        .await?;
    } else if let Ok(claims) = tokens::verify_access_token(keys, issuer, token) {
        if claims.client_id != client_id {
            return Ok(TokenRevocation::NotYours);
        }
        revocation::revoke_access_token(db, &claims.jti, claims.exp.saturating_mul(1000)).await?;
    }
    Ok(TokenRevocation::Done)
}
