//! The support-staff API (`/api/v1/admin/…`): accounts, their sessions, and the audit log.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{EventKind, SessionId, SessionList, Severity, Timestamp, UserId};

crate::names! {
    /// What an account may do: `support` adds the support-staff API.
    pub enum Role {
        User = "user",
        Support = "support",
    }
}

crate::names! {
    /// Who acted: who revoked a session, who wrote an audit record.
    pub enum ActorKind {
        /// latchkeyd itself (reuse detection, limits, signals).
        System = "system",
        /// The account holder, through the account API or a sign-in.
        User = "user",
        /// A support-staff member, through the support API.
        Support = "support",
        /// An OAuth client, through RFC 7009 revocation.
        Client = "client",
        /// Whoever runs the `latchkeyd` command line on the server.
        Operator = "operator",
    }
}

/// Who revoked a session.
pub type RevokedBy = ActorKind;

/// An account as support staff find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UserSummary {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub disabled: bool,
    /// Sessions not revoked (some may have expired).
    #[ts(as = "f64")]
    pub live_sessions: i64,
}

/// A page of accounts (`GET /admin/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<UserSummary>,
    #[ts(as = "Option<f64>")]
    pub next_offset: Option<i64>,
}

/// Which accounts to find.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct UserQuery {
    /// Part of an email address, or an exact account id; empty lists every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// An account and a page of its sessions (`GET /admin/users/{id}/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UserSessions {
    pub user: UserSummary,
    #[serde(flatten)]
    pub sessions: SessionList,
}

/// Which security events to list across accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct AdminEventQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Only events at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The `next_before` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A staff member's reason for an action; required, and kept in the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ReasonBody {
    /// Why (a ticket number, what the user reported); 1–500 characters.
    pub reason: Option<String>,
}

impl ReasonBody {
    /// The reason, trimmed, if it is 1–500 characters of plain text.
    pub fn checked(&self) -> Result<String, &'static str> {
        let reason = self.reason.as_deref().unwrap_or_default().trim();
        if reason.is_empty() {
            return Err("a reason is required for every staff action");
        }
        if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
            return Err("the reason must be at most 500 characters of plain text");
        }
        Ok(reason.to_string())
    }
}

/// One record of the audit log: who did what to whom, chained by hash to the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    #[ts(as = "f64")]
    pub seq: i64,
    pub at: Timestamp,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    /// The actor's email, where the actor is an account still on record: looked up when the
    /// log is read, not part of the record or its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub actor_email: Option<String>,
    /// `admin.session.revoke`, `session.revoke`, `signin`, …
    pub action: String,
    pub target_user_id: Option<UserId>,
    pub target_session_id: Option<SessionId>,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    #[ts(type = "Record<string, unknown>")]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// A page of the audit log, newest first (`GET /admin/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    #[ts(as = "Option<f64>")]
    pub next_before: Option<i64>,
}

/// Which audit records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct AuditQuery {
    /// Only records by this actor (an account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Only records about this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<UserId>,
    /// Only records about this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// An exact action (`admin.session.revoke`) or a prefix ending in `.` (`admin.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only records before this sequence number (the `next_before` of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}
