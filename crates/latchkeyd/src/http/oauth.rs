//! The token endpoint (RFC 6749 §3.2), revocation (RFC 7009), introspection (RFC 7662) and
//! userinfo (OpenID Connect Core §5.3).

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::client_auth::authenticate;
use super::dpop::{resource_access, spend_token_proof, token_endpoint_proof, Resource};
use super::error::OAuthError;
use super::origin::RequestOrigin;
use super::params::{OAuthForm, Params};
use crate::dpop::Proof;
use crate::limit::AddressKey;
use crate::metrics::Metrics;
use crate::scope;
use crate::secret::parse_refresh_token;
use crate::server::AppState;
use crate::service::device::{self, DevicePoll, Polled};
use crate::service::revoke::{self, TokenRevocation};
use crate::store::clients::{Client, ClientKind, GrantType, DEVICE_CODE_GRANT};
use crate::store::codes::{self, CodeExchange};
use crate::store::outcome::{Grant, Refusal};
use crate::store::revocation;
use crate::store::rotation::RefreshRequest;
use crate::store::{users, Origin};
use crate::tokens::{self, AccessClaims, AccessTokenInput, IdClaims, Invalid};

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    /// `DPoP` when the access token is bound to the proof's key (RFC 9449 §5), else `Bearer`.
    token_type: &'static str,
    expires_in: u64,
    /// Only when `offline_access` was granted (OpenID Connect Core §11).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<i64>,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Runs a token, revocation or introspection request under the per-address limit on failed
/// requests: an address past it is refused before any database work; a request that fails
/// is counted against it.
pub(crate) async fn limited(
    state: &AppState,
    origin: &Origin,
    handle: impl std::future::Future<Output = Result<Response, OAuthError>>,
) -> Result<Response, OAuthError> {
    let limit = state
        .limits
        .token_failures
        .as_ref()
        .zip(origin.ip.as_deref().and_then(AddressKey::parse));
    if let Some((limiter, key)) = limit {
        if let Err(wait) = limiter.check(key, state.now()) {
            Metrics::outcome(&state.metrics.rate_limited, "token_failures");
            return Err(OAuthError::rate_limited(wait));
        }
    }
    let result = handle.await;
    if let (Err(e), Some((limiter, key))) = (&result, limit) {
        if e.counts_as_failure() {
            let _ = limiter.charge(key, state.now());
        }
    }
    result
}

pub async fn token(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    limited(&state, &origin, grant(&state, &origin, &headers, &params)).await
}

async fn grant(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let started = Instant::now();
    let grant_type = params.require("grant_type")?.to_string();
    let result = match grant_type.as_str() {
        "authorization_code" | "refresh_token" => match token_endpoint_proof(state, headers) {
            Ok(proof) if grant_type == "authorization_code" => {
                code_grant(state, headers, params, proof.as_ref(), origin).await
            }
            Ok(proof) => refresh_grant(state, headers, params, proof.as_ref(), origin).await,
            Err(e) => Err(e),
        },
        "client_credentials" => match token_endpoint_proof(state, headers) {
            Ok(proof) => client_credentials_grant(state, headers, params, proof.as_ref()).await,
            Err(e) => Err(e),
        },
        DEVICE_CODE_GRANT => match token_endpoint_proof(state, headers) {
            Ok(proof) => device_grant(state, headers, params, proof.as_ref(), origin).await,
            Err(e) => Err(e),
        },
        _ => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token, client_credentials or urn:ietf:params:oauth:grant-type:device_code",
        )),
    };
    let label = match grant_type.as_str() {
        known @ ("authorization_code" | "refresh_token" | "client_credentials") => known,
        DEVICE_CODE_GRANT => "device_code",
        _ => "other",
    };
    match &result {
        Ok(_) => state.metrics.grant(label, "ok"),
        Err(e) => state.metrics.grant(label, e.code()),
    }
    state
        .metrics
        .grant_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

fn refusal(state: &AppState, r: Refusal) -> OAuthError {
    match r {
        Refusal::ReuseDetected | Refusal::CodeReused => {
            Metrics::outcome(&state.metrics.families_revoked, "reuse_detected");
            tracing::warn!(refusal = ?r, "reuse detected: a used grant was presented again and its session is revoked");
        }
        Refusal::SuspectedTheft => {
            Metrics::outcome(&state.metrics.families_revoked, "auto_revoked");
            tracing::warn!("a refresh raised a high-severity signal; its session is revoked");
        }
        _ => tracing::debug!(refusal = ?r, "grant refused"),
    }
    match r {
        Refusal::ScopeNotGranted => {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", r.description())
        }
        Refusal::KeyMismatch => {
            if state.settings.dpop.revoke_on_key_mismatch {
                Metrics::outcome(&state.metrics.families_revoked, "key_mismatch");
            }
            tracing::warn!("a DPoP-bound refresh token was presented without its key");
            OAuthError::invalid_grant(r.description())
        }
        _ => OAuthError::invalid_grant(r.description()),
    }
}

async fn code_grant(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    proof: Option<&Proof>,
    origin: &Origin,
) -> Result<Response, OAuthError> {
    let client =
        sign_in_client(state, headers, params, GrantType::AuthorizationCode, proof).await?;
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    if !valid_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    let outcome = codes::redeem_code(
        &state.db,
        &state.settings.tokens,
        &CodeExchange {
            code,
            client_id: &client.client_id,
            redirect_uri: params.get("redirect_uri"),
            code_verifier: verifier,
            dpop_jkt: proof.map(|p| p.jkt.as_str()),
            // RFC 9449 §5: a public client's refresh tokens are bound to its key; a
            // confidential client's are already bound to its credentials.
            bind_refresh: client.kind == ClientKind::Public,
        },
        origin,
        state.now(),
    )
    .await?;
    let grant = outcome.map_err(|r| refusal(state, r))?;
    signed_in(state, &client, grant, proof).await
}

/// The client of a sign-in grant (a code, a device code): authenticated, registered for the
/// grant, its proof (if any) spent.
async fn sign_in_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    grant: GrantType,
    proof: Option<&Proof>,
) -> Result<std::sync::Arc<Client>, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    registered_for(&client, grant)?;
    if let Some(proof) = proof {
        spend_token_proof(state, proof).await?;
    }
    Ok(client)
}

/// The answer to a sign-in grant (a code, a device code): the access token, the refresh token
/// with `offline_access`, the ID token with `openid`.
async fn signed_in(
    state: &AppState,
    client: &Client,
    grant: Grant,
    proof: Option<&Proof>,
) -> Result<Response, OAuthError> {
    let id_token = if scope::contains(&grant.scope, scope::OPENID) {
        Some(id_token(state, &grant).await?)
    } else {
        None
    };
    let offline = scope::contains(&grant.scope, scope::OFFLINE_ACCESS);
    token_response(state, client, grant, proof, id_token, offline)
}

/// RFC 8628 §3.4–3.5: a device polling for the sign-in a person approves elsewhere.
async fn device_grant(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    proof: Option<&Proof>,
    origin: &Origin,
) -> Result<Response, OAuthError> {
    let client = sign_in_client(state, headers, params, GrantType::DeviceCode, proof).await?;
    let request = DevicePoll {
        device_code: params.require("device_code")?,
        client_id: &client.client_id,
        dpop_jkt: proof.map(|p| p.jkt.as_str()),
        bind_refresh: client.kind == ClientKind::Public,
    };
    let polled = device::poll(
        &state.db,
        &state.settings.tokens,
        &state.settings.signals,
        &request,
        origin,
        state.now(),
    )
    .await?;
    let pending =
        |code, description| Err(OAuthError::new(StatusCode::BAD_REQUEST, code, description));
    match polled {
        Polled::Granted(grant) => signed_in(state, &client, grant, proof).await,
        Polled::Pending => pending(
            "authorization_pending",
            "the user has not approved the request yet: poll again after the interval",
        ),
        Polled::SlowDown => pending(
            "slow_down",
            "polling too often: wait 5 seconds longer between polls from now on",
        ),
        Polled::Denied => pending("access_denied", "the user denied the sign-in"),
        Polled::Expired => pending(
            "expired_token",
            "the device code has expired: ask for a new one",
        ),
        Polled::Refused(r) => Err(refusal(state, r)),
    }
}

/// RFC 6749 §5.2 `unauthorized_client`: the client is not registered for this grant.
pub(crate) fn registered_for(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.may(grant) {
        return Ok(());
    }
    Err(OAuthError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        match grant {
            GrantType::AuthorizationCode => {
                "this client is a service account: it is not registered to sign users in"
            }
            GrantType::ClientCredentials => {
                "this client is not registered for client_credentials (a service account's own token)"
            }
            GrantType::DeviceCode => {
                "this client is not registered for the device authorization grant (sign-in with a code)"
            }
        },
    ))
}

/// RFC 6749 §4.4: a service account's own access token. Only a confidential client registered
/// for the grant gets one, only for the service scopes it is registered for (all of them when
/// it asks for none, RFC 6749 §3.3), and never a refresh token: it can sign in again.
async fn client_credentials_grant(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<Response, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "client_credentials is for confidential clients: a public client has no secret",
        ));
    }
    registered_for(&client, GrantType::ClientCredentials)?;
    let mut granted: Vec<&str> = Vec::new();
    match params.get("scope") {
        Some(asked) => {
            for s in asked.split_ascii_whitespace() {
                if !scope::is_service(s) || !client.allows(s) {
                    return Err(OAuthError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        format!("this client is not registered for the {s:?} scope with client_credentials"),
                    ));
                }
                if !granted.contains(&s) {
                    granted.push(s);
                }
            }
        }
        None => granted.extend(
            client
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| scope::is_service(s)),
        ),
    }
    if let Some(proof) = proof {
        spend_token_proof(state, proof).await?;
    }
    let scope = granted.join(" ");
    let ttl = state.settings.tokens.access_token_ttl_secs;
    let access_token = tokens::mint_access_token(
        &state.keys,
        &AccessTokenInput {
            issuer: &state.issuer,
            subject: &client.client_id,
            client_id: &client.client_id,
            scope: &scope,
            session_id: None,
            ttl_secs: ttl,
            jkt: proof.map(|p| p.jkt.as_str()),
        },
        state.now(),
    )?;
    Ok(no_store(Json(TokenResponse {
        access_token,
        token_type: if proof.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ttl,
        refresh_token: None,
        refresh_token_expires_in: None,
        scope,
        id_token: None,
    })))
}

/// RFC 7636 §4.1: 43-128 characters of the unreserved set.
pub(crate) fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn id_token(state: &AppState, grant: &Grant) -> Result<String, OAuthError> {
    let user = users::find(&state.db, &grant.user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
    let has = |s: &str| scope::contains(&grant.scope, s);
    let iat = state.clock.now_secs();
    let claims = IdClaims {
        iss: &state.issuer,
        sub: &grant.user_id,
        aud: &grant.client_id,
        exp: iat + state.settings.tokens.id_token_ttl_secs as i64,
        iat,
        auth_time: grant.auth_time.div_euclid(1000),
        sid: &grant.session_id,
        nonce: grant.nonce.as_deref(),
        email: has("email").then_some(user.email.as_str()),
        email_verified: has("email").then_some(false),
        name: has("profile").then_some(user.name.as_str()),
    };
    Ok(tokens::mint_id_token(&state.keys, &claims)?)
}

/// The token response for a grant. Its scope is what the session was granted and the client
/// is registered for now: a client whose registration was narrowed loses the rest at once.
fn token_response(
    state: &AppState,
    client: &Client,
    grant: Grant,
    proof: Option<&Proof>,
    id_token: Option<String>,
    with_refresh_token: bool,
) -> Result<Response, OAuthError> {
    let jkt = proof.map(|p| p.jkt.as_str());
    let ttl = state.settings.tokens.access_token_ttl_secs;
    let now = state.now();
    let scope = scope::within(&grant.scope, &client.scopes).join(" ");
    let access_token = tokens::mint_access_token(
        &state.keys,
        &AccessTokenInput {
            issuer: &state.issuer,
            subject: &grant.user_id,
            client_id: &grant.client_id,
            scope: &scope,
            session_id: Some(&grant.session_id),
            ttl_secs: ttl,
            jkt,
        },
        now,
    )?;
    let mut res = no_store(Json(TokenResponse {
        access_token,
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ttl,
        refresh_token_expires_in: with_refresh_token
            .then(|| (grant.refresh_expires_at - now).div_euclid(1000)),
        refresh_token: with_refresh_token.then(|| grant.refresh_token.into_inner()),
        scope,
        id_token,
    }));
    // Where nonces are required, hand the client the one for its next proof.
    if proof.is_some() && state.settings.dpop.require_nonce {
        if let Ok(nonce) = header::HeaderValue::from_str(&state.nonces.issue(now)) {
            res.headers_mut().insert("dpop-nonce", nonce);
        }
    }
    Ok(res)
}

async fn refresh_grant(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    proof: Option<&Proof>,
    origin: &Origin,
) -> Result<Response, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    // A refresh token comes only from a user's sign-in (either grant): a service account
    // has none to refresh.
    if !client.signs_users_in() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client is a service account: it has no user sign-in to refresh",
        ));
    }
    if let Some(proof) = proof {
        spend_token_proof(state, proof).await?;
    }
    let refresh_token = params.require("refresh_token")?;
    let Some(token) = parse_refresh_token(refresh_token) else {
        return Err(refusal(state, Refusal::Unknown));
    };
    let request = RefreshRequest {
        token,
        client_id: client.client_id.clone(),
        requested_scope: params.get("scope").map(str::to_string),
        jkt: proof.map(|p| p.jkt.clone()),
        bind: client.kind == ClientKind::Public,
        origin: origin.clone(),
    };
    let grant = state
        .rotator
        .rotate(request)
        .await?
        .map_err(|r| refusal(state, r))?;
    token_response(state, &client, grant, proof, None, true)
}

/// RFC 7009. Revoking a refresh token ends its whole session; an access token is revoked alone.
pub async fn revoke(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    limited(
        &state,
        &origin,
        revoke_token(&state, &origin, &headers, &params),
    )
    .await
}

async fn revoke_token(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    let token = params.require("token")?;
    let revoked = revoke::revoke_token(
        &state.db,
        &state.keys,
        &state.issuer,
        &client.client_id,
        token,
        origin,
        state.now(),
    )
    .await?;
    if revoked == TokenRevocation::NotYours {
        // RFC 7009 §2.1: a client may revoke only its own tokens.
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the token was issued to another client",
        ));
    }
    // §2.2: an unknown or already invalid token is answered with 200 as well.
    Ok(no_store(StatusCode::OK))
}

/// Is the access token good right now, as a resource server would need to know?
pub(crate) async fn access_token_state(
    state: &AppState,
    token: &str,
) -> Result<Result<AccessClaims, &'static str>, OAuthError> {
    let claims = match tokens::verify_access_token(&state.keys, &state.issuer, token) {
        Ok(c) => c,
        Err(Invalid::UnknownKey) => return Ok(Err("the token was signed by an unknown key")),
        Err(Invalid::WrongType) => return Ok(Err("the token is not an access token")),
        Err(_) => return Ok(Err("the token is malformed or its signature is invalid")),
    };
    if claims.exp <= state.clock.now_secs() {
        // Never a new token for an expired one: only the refresh grant mints access tokens.
        return Ok(Err("the access token has expired"));
    }
    match &claims.sid {
        Some(sid) => {
            if !state.session_live(sid).await? {
                return Ok(Err("the session of this token was revoked"));
            }
        }
        // A service account's token lives no longer than its registration.
        None => {
            if state.client(&claims.client_id).await?.is_none() {
                return Ok(Err("the client of this token was removed"));
            }
        }
    }
    if revocation::access_token_revoked(&state.db, &claims.jti).await? {
        return Ok(Err("the access token was revoked"));
    }
    Ok(Ok(claims))
}

/// RFC 7662, for confidential clients (resource servers).
pub async fn introspect(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    limited(&state, &origin, introspect_token(&state, &headers, &params)).await
}

async fn introspect_token(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = authenticate(state, headers, params).await?.client;
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients (resource servers)",
            false,
        ));
    }
    let token = params.require("token")?;
    let now = state.now();
    let inactive = || no_store(Json(json!({ "active": false })));
    // A client learns only about its own tokens, unless it was registered as a resource server
    // (scope `introspection`): anyone else's is `active: false`, as an unknown one is (RFC 7662
    // §4 leaves to the server what a caller may see).
    let may_see = |owner: &str| {
        owner == client.client_id || client.scopes.iter().any(|s| s == scope::INTROSPECTION)
    };
    if let Some(info) = revocation::refresh_token_info(&state.db, token, now).await? {
        if !info.active || !may_see(&info.client_id) {
            return Ok(inactive());
        }
        let mut body = json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": info.client_id,
            "sub": info.user_id,
            "scope": info.scope,
            "sid": info.session_id,
            "iat": info.issued_at.div_euclid(1000),
            "exp": info.expires_at.div_euclid(1000),
            "iss": state.issuer,
        });
        if let Some(jkt) = info.dpop_jkt {
            body["cnf"] = json!({ "jkt": jkt });
        }
        return Ok(no_store(Json(body)));
    }
    match access_token_state(state, token).await? {
        Ok(c) if may_see(&c.client_id) => {
            let mut body = json!({
                "active": true,
                "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
                "client_id": c.client_id,
                "sub": c.sub,
                "scope": c.scope,
                "jti": c.jti,
                "iat": c.iat,
                "exp": c.exp,
                "iss": c.iss,
                "aud": c.aud,
            });
            if let Some(sid) = c.sid {
                body["sid"] = json!(sid);
            }
            if let Some(cnf) = c.cnf {
                body["cnf"] = json!(cnf);
            }
            Ok(no_store(Json(body)))
        }
        _ => Ok(inactive()),
    }
}

pub async fn userinfo(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let resource = Resource {
        audience: &state.issuer,
        scope: scope::OPENID,
        lacking_scope: "userinfo needs the openid scope",
    };
    let claims = resource_access(&state, &headers, method.as_str(), "/userinfo", &resource).await?;
    let user = users::find(&state.db, &claims.sub)
        .await?
        .ok_or(OAuthError::invalid_token("the account no longer exists"))?;
    let mut body = json!({ "sub": user.id });
    if claims.has_scope("email") {
        body["email"] = json!(user.email);
        body["email_verified"] = json!(false);
    }
    if claims.has_scope("profile") {
        body["name"] = json!(user.name);
    }
    Ok(no_store(Json(body)))
}
