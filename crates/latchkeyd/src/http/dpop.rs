//! Where DPoP proofs are checked: the token endpoint (RFC 9449 §5) and protected resources (§7).

use axum::http::{header, HeaderMap, StatusCode};

use super::error::OAuthError;
use super::oauth::access_token_state;
use crate::dpop::{self, Expected, Proof, ProofError};
use crate::server::AppState;
use crate::store;
use crate::tokens::AccessClaims;

/// The request's one `DPoP` header, if it has one.
fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut all = headers.get_all("dpop").iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ProofError::Invalid("send exactly one DPoP header"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ProofError::Invalid("the DPoP header is not ASCII"))
}

fn verify(state: &AppState, value: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    dpop::verify(
        value,
        expected,
        &state.settings.dpop,
        &state.nonces,
        state.now(),
    )
}

/// Spends a verified proof's `jti`: a proof is good for one request, on any replica.
async fn spend(state: &AppState, proof: &Proof) -> Result<Result<(), ProofError>, OAuthError> {
    if store::dpop::first_use(&state.db, proof).await? {
        Ok(Ok(()))
    } else {
        Ok(Err(ProofError::Invalid(
            "this DPoP proof was already used (its jti was seen before)",
        )))
    }
}

fn token_endpoint_error(state: &AppState, e: ProofError) -> OAuthError {
    match e {
        ProofError::Invalid(d) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", d),
        ProofError::UseNonce => OAuthError::new(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "put the nonce from the DPoP-Nonce header in the DPoP proof",
        )
        .with_dpop_nonce(state.nonces.issue(state.now())),
    }
}

fn resource_error(state: &AppState, e: ProofError) -> OAuthError {
    match e {
        ProofError::Invalid(d) => OAuthError::dpop_challenge("invalid_dpop_proof", d),
        ProofError::UseNonce => OAuthError::dpop_challenge(
            "use_dpop_nonce",
            "put the nonce from the DPoP-Nonce header in the DPoP proof",
        )
        .with_dpop_nonce(state.nonces.issue(state.now())),
    }
}

/// The token endpoint's proof, if the client sent one, verified but not yet spent (that is
/// `spend_token_proof`, once the client is authenticated: no database write for strangers).
/// An invalid proof is an error even where none was needed.
pub fn token_endpoint_proof(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Proof>, OAuthError> {
    let Some(value) = proof_header(headers).map_err(|e| token_endpoint_error(state, e))? else {
        return Ok(None);
    };
    let url = state.endpoint("/token");
    let expected = Expected {
        method: "POST",
        url: &url,
        access_token: None,
        require_nonce: state.settings.dpop.require_nonce,
    };
    verify(state, value, &expected)
        .map(Some)
        .map_err(|e| token_endpoint_error(state, e))
}

pub async fn spend_token_proof(state: &AppState, proof: &Proof) -> Result<(), OAuthError> {
    spend(state, proof)
        .await?
        .map_err(|e| token_endpoint_error(state, e))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// `Authorization: Bearer …` (RFC 6750 §2.1) or `Authorization: DPoP …` (RFC 9449 §7.1).
fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), OAuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(OAuthError::missing_token)?
        .to_str()
        .map_err(|_| OAuthError::invalid_token("the Authorization header is malformed"))?;
    let (scheme, token) = value.split_once(' ').ok_or(OAuthError::invalid_token(
        "the Authorization header is malformed",
    ))?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(OAuthError::missing_token());
    };
    match token.trim() {
        "" => Err(OAuthError::missing_token()),
        token => Ok((scheme, token)),
    }
}

/// One of latchkeyd's own protected resources, as its access checks see it.
pub struct Resource<'a> {
    /// The `aud` its tokens carry.
    pub audience: &'a str,
    /// The scope a token needs here, and the words of the 403 when it lacks it.
    pub scope: &'static str,
    pub lacking_scope: &'static str,
}

/// The claims of a protected-resource request's live access token for `resource`. A
/// DPoP-bound token is accepted only as `DPoP` with a proof by its key for this very request;
/// never as Bearer.
pub async fn resource_access(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    resource: &Resource<'_>,
) -> Result<AccessClaims, OAuthError> {
    let (scheme, token) = authorization(headers)?;
    let refused = |d| match scheme {
        Scheme::Bearer => OAuthError::invalid_token(d),
        Scheme::Dpop => OAuthError::dpop_challenge("invalid_token", d),
    };
    let claims = access_token_state(state, token).await?.map_err(refused)?;
    if !claims.has_scope(resource.scope) {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            resource.lacking_scope,
        ));
    }
    // RFC 9068 §4: a token issued for another resource is not good here.
    if !claims.aud.contains(resource.audience) {
        return Err(refused("the access token was not issued for this resource"));
    }
    let bound = claims.cnf.as_ref().map(|c| c.jkt.clone());
    match (scheme, bound) {
        (Scheme::Bearer, None) => Ok(claims),
        (Scheme::Bearer, Some(_)) => Err(OAuthError::dpop_challenge(
            "invalid_token",
            "this access token is bound to a key: send it as `Authorization: DPoP` with a DPoP proof",
        )),
        (Scheme::Dpop, None) => Err(OAuthError::dpop_challenge(
            "invalid_token",
            "this access token is not bound to a key: send it as Bearer",
        )),
        (Scheme::Dpop, Some(jkt)) => {
            let value = proof_header(headers)
                .map_err(|e| resource_error(state, e))?
                .ok_or(OAuthError::dpop_challenge(
                    "invalid_dpop_proof",
                    "a DPoP proof is required with a DPoP-bound access token",
                ))?;
            let url = state.endpoint(path);
            let expected = Expected {
                method,
                url: &url,
                access_token: Some(token),
                require_nonce: false,
            };
            let proof = verify(state, value, &expected).map_err(|e| resource_error(state, e))?;
            if proof.jkt != jkt {
                return Err(OAuthError::dpop_challenge(
                    "invalid_dpop_proof",
                    "the DPoP proof is signed by another key than the one this token is bound to",
                ));
            }
            spend(state, &proof)
                .await?
                .map_err(|e| resource_error(state, e))?;
            Ok(claims)
        }
    }
}
