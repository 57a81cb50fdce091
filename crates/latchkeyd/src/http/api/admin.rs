//! The support-staff API. Every successful call leaves exactly one audit record: reads name
//! whose data was read, actions carry the staff member's mandatory reason.

use axum::extract::State;
use axum::Json;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use latchkey_proto::{
    AdminEventQuery, AuditPage, AuditQuery, ChainQuery, EventList, Revoked, SessionId,
    SessionQuery, UserList, UserQuery, UserSessions, UserSummary,
};

use super::me::{chain_limit, event_list, parse_cursor, session_page};
use super::ApiError;
use super::{
    not_found, page_limit, required_reason, ApiErrorBody, ApiJson, ApiPath, ApiQuery, Paging,
    ReasonBody, Staff,
};
use crate::http::origin::RequestOrigin;
use crate::server::AppState;
use crate::store::audit::{self, Actor};
use crate::store::events;
use crate::store::sessions::{self, Family, SessionView};
use crate::store::users;
use crate::store::Origin;

/// Appends the audit record of a staff read.
async fn audited_read(
    state: &AppState,
    staff: &Staff,
    origin: &Origin,
    action: &str,
    target_user_id: Option<&str>,
    target_session_id: Option<&str>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    audit::append_alone(
        &state.db,
        audit::Entry {
            actor: Actor::Support(&staff.0.user.id),
            action,
            target_user_id,
            target_session_id,
            reason: None,
            origin,
            details,
        },
        state.now(),
    )
    .await?;
    Ok(())
}

pub(super) fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::invalid_request(format!(
                        "{name} must be an RFC 3339 time such as 2026-11-29T12:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// Finds accounts by email or id.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "support", security(("bearer" = [])),
    params(UserQuery),
    responses((status = 200, body = UserList), (status = 403, body = ApiErrorBody)))]
pub async fn search_users(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<UserList>, ApiError> {
    let paging = Paging {
        limit: q.limit,
        offset: q.offset,
    };
    let needle = q.q.unwrap_or_default();
    let users = users::search(&state.db, &needle, paging.limit(), paging.offset()).await?;
    audited_read(
        &state,
        &staff,
        &origin,
        "admin.users.search",
        None,
        None,
        json!({ "q": needle, "results": users.len() }),
    )
    .await?;
    Ok(Json(UserList {
        next_offset: paging.next(users.len(), None),
        users,
    }))
}

async fn user_summary(state: &AppState, id: &str) -> Result<UserSummary, ApiError> {
    users::summary(&state.db, id)
        .await?
        .ok_or_else(|| not_found("there is no such account"))
}

/// An account's sessions grouped by device.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/sessions", tag = "support", security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id"), SessionQuery),
    responses((status = 200, body = UserSessions), (status = 404, body = ApiErrorBody)))]
pub async fn user_sessions(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> Result<Json<UserSessions>, ApiError> {
    let user = user_summary(&state, &id).await?;
    let all = sessions::for_user(&state.db, &id, state.idle(), state.now()).await?;
    let list = session_page(all, &q, None);
    audited_read(
        &state,
        &staff,
        &origin,
        "admin.user.sessions.read",
        Some(&id),
        None,
        json!({ "sessions": list.total }),
    )
    .await?;
    Ok(Json(UserSessions {
        user,
        sessions: list,
    }))
}

async fn any_session(state: &AppState, id: &str) -> Result<SessionView, ApiError> {
    sessions::find(&state.db, id, state.idle(), state.now())
        .await?
        .ok_or_else(|| not_found("there is no such session"))
}

/// Any session's rotation chain and events.
#[utoipa::path(get, path = "/api/v1/admin/sessions/{id}/family", tag = "support", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ChainQuery),
    responses((status = 200, body = Family), (status = 404, body = ApiErrorBody)))]
pub async fn session_family(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<ChainQuery>,
) -> Result<Json<Family>, ApiError> {
    let session = any_session(&state, &id).await?;
    let user_id = session.user_id.clone();
    let family = sessions::family(&state.db, session, q.before, chain_limit(&q)).await?;
    audited_read(
        &state,
        &staff,
        &origin,
        "admin.session.family.read",
        Some(&user_id),
        Some(&id),
        json!({ "generations": family.generations.len() }),
    )
    .await?;
    Ok(Json(family))
}

/// Security events across accounts.
#[utoipa::path(get, path = "/api/v1/admin/events", tag = "support", security(("bearer" = [])),
    params(AdminEventQuery),
    responses((status = 200, body = EventList), (status = 400, body = ApiErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiQuery(q): ApiQuery<AdminEventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = page_limit(q.limit);
    let filter = events::Filter {
        user_id: q.user_id.clone().map(|u| u.into_string()),
        session_id: q.session_id.clone().map(SessionId::into_string),
        kind: q.kind.map(|k| k.as_str().to_string()),
        severity: q.severity.map(|s| s.as_str().to_string()),
        since: parse_time("since", q.since.as_deref())?,
        before: parse_cursor(q.before.as_deref())?,
        limit,
    };
    let found = events::list(&state.db, &filter).await?;
    audited_read(
        &state,
        &staff,
        &origin,
        "admin.events.read",
        q.user_id.as_deref(),
        q.session_id.as_deref(),
        json!({ "kind": q.kind, "severity": q.severity, "results": found.len() }),
    )
    .await?;
    Ok(Json(event_list(found, limit)))
}

/// Revokes any session, with a reason.
#[utoipa::path(post, path = "/api/v1/admin/sessions/{id}/revoke", tag = "support", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    request_body = ReasonBody,
    responses((status = 200, body = SessionView), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<SessionView>, ApiError> {
    let reason = required_reason(body)?;
    sessions::staff_revoke(
        &state.db,
        &staff.0.user.id,
        &id,
        &reason,
        &origin,
        state.now(),
    )
    .await?
    .ok_or_else(|| not_found("there is no such session"))?;
    Ok(Json(any_session(&state, &id).await?))
}

/// Revokes every session of an account, with a reason.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/revoke-all", tag = "support", security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    request_body = ReasonBody,
    responses((status = 200, body = Revoked), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn revoke_all(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Json<Revoked>, ApiError> {
    let reason = required_reason(body)?;
    user_summary(&state, &id).await?;
    let revoked = sessions::staff_revoke_all(
        &state.db,
        &staff.0.user.id,
        &id,
        &reason,
        &origin,
        state.now(),
    )
    .await?;
    Ok(Json(Revoked {
        revoked: revoked.into_iter().map(SessionId::from).collect(),
    }))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "support", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ApiErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    staff: Staff,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_limit(q.limit);
    let filter = audit::Filter {
        actor_id: q.actor_id.clone(),
        target_user_id: q.target_user_id.clone().map(|u| u.into_string()),
        target_session_id: q.session_id.clone().map(SessionId::into_string),
        action: q.action.clone(),
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        before_seq: q.before,
        limit,
    };
    let records = audit::list(&state.db, &filter).await?;
    audited_read(
        &state,
        &staff,
        &origin,
        "admin.audit.read",
        q.target_user_id.as_deref(),
        q.session_id.as_deref(),
        json!({ "action": q.action, "actor_id": q.actor_id, "results": records.len() }),
    )
    .await?;
    Ok(Json(AuditPage {
        next_before: (records.len() as i64 == limit)
            .then(|| records.last().map(|r| r.seq))
            .flatten(),
        records,
    }))
}
