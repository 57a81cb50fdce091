//! The account API: the signed-in user's sessions, families and security events.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_proto::{
    ChainQuery, DeviceGroup, EventList, EventQuery, Profile, Revoked, Role, SessionCounts,
    SessionId, SessionList, SessionQuery, SessionSort, UserId,
};

use super::ApiError;
use super::{not_found, page_limit, ApiErrorBody, ApiPath, ApiQuery, Caller, Paging};
use crate::clock::secs;
use crate::http::error::OAuthError;
use crate::http::origin::RequestOrigin;
use crate::server::AppState;
use crate::store::audit::Actor;
use crate::store::events::{self, Event};
use crate::store::revocation;
use crate::store::sessions::{self, Family, SessionView};

/// Who the access token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = ApiErrorBody)))]
pub async fn profile(caller: Caller) -> Json<Profile> {
    Json(Profile {
        id: UserId::from(caller.user.id),
        email: caller.user.email,
        name: caller.user.name,
        staff: caller.user.role == Role::Support
            && crate::scope::contains(&caller.claims.scope, crate::scope::SUPPORT),
        role: caller.user.role,
        session_id: SessionId::from(caller.session_id),
    })
}

/// Filters, sorts and pages sessions, then groups the page by device.
pub(super) fn session_page(
    mut all: Vec<SessionView>,
    q: &SessionQuery,
    current: Option<&str>,
) -> SessionList {
    for s in &mut all {
        s.current = current.is_some_and(|c| s.id == c);
    }
    let counts = SessionCounts::of(&all);
    all.retain(|s| q.state.is_none_or(|st| s.state == st));
    all.retain(|s| q.suspicious.is_none_or(|want| s.suspicious == want));
    if let Some(SessionSort::OldestUse) = q.sort {
        all.reverse();
    }
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
    };
    let total = all.len();
    let page: Vec<SessionView> = all
        .into_iter()
        .skip(paging.offset() as usize)
        .take(paging.limit() as usize)
        .collect();
    let next_offset = paging.next(page.len(), Some(total));
    let mut devices: Vec<DeviceGroup> = Vec::new();
    for s in page {
        match devices.iter_mut().find(|g| g.device.same_as(&s.device)) {
            Some(group) => {
                group.current |= s.current;
                group.sessions.push(s);
            }
            None => devices.push(DeviceGroup {
                device: s.device.clone(),
                current: s.current,
                sessions: vec![s],
            }),
        }
    }
    SessionList {
        devices,
        total,
        next_offset,
        counts,
    }
}

/// The user's sessions grouped by device.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "account", security(("bearer" = [])),
    params(SessionQuery),
    responses((status = 200, body = SessionList), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let all = sessions::for_user(&state.db, &caller.user.id, state.idle(), state.now()).await?;
    Ok(Json(session_page(all, &q, Some(&caller.session_id))))
}

/// The caller's own session, or 404 (never 403: another account's ids are not confirmed).
async fn own_session(state: &AppState, caller: &Caller, id: &str) -> Result<SessionView, ApiError> {
    let mut session = sessions::find(&state.db, id, state.idle(), state.now())
        .await?
        .filter(|s| s.user_id == caller.user.id)
        .ok_or_else(|| not_found("there is no such session on this account"))?;
    session.current = session.id == caller.session_id;
    Ok(session)
}

/// Revokes one session: its refresh token fails from now on, and its access tokens too.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ApiErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> Result<Json<SessionView>, ApiError> {
    own_session(&state, &caller, &id).await?;
    let actor = Actor::User(&caller.user.id);
    revocation::revoke_session(
        &state.db,
        &id,
        actor,
        "revoked_by_user",
        &origin,
        state.now(),
    )
    .await?;
    Ok(Json(own_session(&state, &caller, &id).await?))
}

/// Signs out every other device (every session but the caller's).
#[utoipa::path(post, path = "/api/v1/me/sessions/revoke-others", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Revoked), (status = 401, body = ApiErrorBody)))]
pub async fn revoke_others(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    caller: Caller,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = sessions::revoke_others(
        &state.db,
        &caller.user.id,
        &caller.session_id,
        &origin,
        state.now(),
    )
    .await?;
    Ok(Json(Revoked {
        revoked: revoked.into_iter().map(SessionId::from).collect(),
    }))
}

pub(super) fn chain_limit(q: &ChainQuery) -> i64 {
    page_limit(q.limit)
}

/// The rotation chain of a session's family, newest generation first, with its events.
#[utoipa::path(get, path = "/api/v1/me/sessions/{id}/family", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ChainQuery),
    responses((status = 200, body = Family), (status = 404, body = ApiErrorBody)))]
pub async fn family(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<ChainQuery>,
) -> Result<Json<Family>, ApiError> {
    let session = own_session(&state, &caller, &id).await?;
    Ok(Json(
        sessions::family(&state.db, session, q.before, chain_limit(&q)).await?,
    ))
}

/// "This was me": clears the session's signals (recorded in the audit log). A flagged session
/// cannot clear its own flags with its own token unless it signed in moments ago: whoever holds
/// a copy of it could. Another session of the account can (RFC 9470 `max_age` otherwise).
#[utoipa::path(post, path = "/api/v1/me/sessions/{id}/acknowledge", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionView), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> Result<Json<SessionView>, ApiError> {
    let session = own_session(&state, &caller, &id).await?;
    let max_age = state.settings.signals.acknowledge_max_age_secs;
    if session.current && state.now() - session.signed_in_at.millis() > secs(max_age) {
        return Err(ApiError::Access(OAuthError::insufficient_user_authentication(
            max_age,
            "a session cannot vouch for itself: confirm it was you from another device signed in to this account, or sign in again here first",
        )));
    }
    sessions::acknowledge(&state.db, &caller.user.id, &id, &origin, state.now()).await?;
    Ok(Json(own_session(&state, &caller, &id).await?))
}

pub(super) fn parse_cursor(before: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    before
        .map(|b| {
            b.split_once('.')
                .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
                .ok_or(ApiError::invalid_request(
                    "before is not a cursor this API returned",
                ))
        })
        .transpose()
}

pub(super) fn event_list(events: Vec<Event>, limit: i64) -> EventList {
    let next_before = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| format!("{}.{}", e.at.millis(), e.id)))
        .flatten();
    EventList {
        events,
        next_before,
    }
}

/// The user's security events: a live stream with `Accept: text/event-stream` (each SSE
/// event is named by its kind and carries the event as JSON; the stream ends when the access
/// token expires or its session is revoked), otherwise a page of past events.
#[utoipa::path(get, path = "/api/v1/me/events", tag = "account", security(("bearer" = [])),
    params(EventQuery),
    responses((status = 200, description = "Events (JSON) or a live stream (SSE)",
        content((EventList = "application/json"), (String = "text/event-stream"))),
        (status = 401, body = ApiErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Response, ApiError> {
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(super::stream::live(&state, caller).into_response());
    }
    let limit = page_limit(q.limit);
    let found = events::list(
        &state.db,
        &events::Filter {
            user_id: Some(caller.user.id.clone()),
            session_id: q.session_id.map(SessionId::into_string),
            kind: q.kind.map(|k| k.as_str().to_string()),
            before: parse_cursor(q.before.as_deref())?,
            limit,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(event_list(found, limit)).into_response())
}
