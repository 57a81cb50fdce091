//! The account API (`/api/v1/me/…`): the signed-in user's sessions, families and security
//! events.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{
    ClientId, EventKind, LinkState, RevokedBy, Role, SessionId, SessionState, Severity, Timestamp,
    UserId,
};

/// Who the access token belongs to (`GET /me`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Profile {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The session of the calling access token.
    pub session_id: SessionId,
    /// This session may use the support API: a support-staff account signed in with the
    /// `support` scope (never granted to a sign-in with a code).
    pub staff: bool,
}

/// A device as its app described it at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Device {
    /// As the app reported it (`device_name`), e.g. the host name.
    pub name: Option<String>,
    /// `linux`, `macos`, `windows`, … as the app reported it.
    pub platform: Option<String>,
    pub app_version: Option<String>,
}

impl Device {
    /// Sessions are grouped on one device when its name and platform agree (the app version
    /// changes with upgrades).
    pub fn same_as(&self, other: &Device) -> bool {
        self.name == other.name && self.platform == other.platform
    }
}

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Place {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How a session ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Revocation {
    pub at: Timestamp,
    pub by: RevokedBy,
    /// Why: `signed_out_elsewhere`, `reuse_detected`, a staff member's reason, …
    pub reason: Option<String>,
}

/// A security event: something that happened to a session or an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SecurityEvent {
    pub id: String,
    pub at: Timestamp,
    pub kind: EventKind,
    pub severity: Severity,
    /// What happened, in plain words.
    pub summary: String,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    /// The generation of the family the event concerns, when it concerns one.
    #[ts(as = "Option<f64>")]
    pub generation: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The evidence, as recorded.
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    #[ts(type = "Record<string, unknown>")]
    pub details: serde_json::Value,
    pub acknowledged_at: Option<Timestamp>,
}

impl SecurityEvent {
    /// A signal is an event that says the family may be in someone else's hands.
    pub fn is_signal(&self) -> bool {
        self.kind.is_signal()
    }

    /// Does it make its family suspicious (until acknowledged)?
    pub fn is_alarming(&self) -> bool {
        self.is_signal() && self.acknowledged_at.is_none() && self.severity.is_alarming()
    }
}

/// One session: one sign-in on one device, and its refresh-token family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SessionView {
    pub id: SessionId,
    pub user_id: UserId,
    pub client_id: ClientId,
    /// The app's name, as registered.
    pub app: String,
    pub device: Device,
    pub scope: String,
    pub signed_in_at: Timestamp,
    pub last_used_at: Timestamp,
    /// When the family ends at the latest (rotation never extends it).
    pub expires_at: Timestamp,
    pub first_seen: Place,
    pub last_seen: Place,
    pub state: SessionState,
    pub revoked: Option<Revocation>,
    /// How many refresh tokens the family has had.
    #[ts(as = "f64")]
    pub generation: i64,
    /// It has an unacknowledged signal of medium or high severity.
    pub suspicious: bool,
    /// Its unacknowledged signals, oldest first.
    pub signals: Vec<SecurityEvent>,
    /// The session of the access token making this call.
    pub current: bool,
    /// The SHA-256 thumbprint of the device key its refresh tokens are bound to (DPoP): a
    /// copy of its refresh token is useless without that key. `null`: a bearer family.
    pub key_thumbprint: Option<String>,
}

/// The sessions of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DeviceGroup {
    pub device: Device,
    /// This device holds the calling session.
    pub current: bool,
    pub sessions: Vec<SessionView>,
}

/// A page of sessions, grouped by device (`GET /me/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SessionList {
    /// Devices in the order of their first session in this page.
    pub devices: Vec<DeviceGroup>,
    /// Sessions matching the filters, across all pages.
    pub total: usize,
    #[ts(as = "Option<f64>")]
    pub next_offset: Option<i64>,
    /// How many of the account's sessions each filter would show, whatever this one is: the
    /// counts on a list's filter buttons.
    pub counts: SessionCounts,
}

/// The account's sessions counted by state, and those suspicious in any state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SessionCounts {
    pub all: usize,
    pub active: usize,
    pub revoked: usize,
    pub expired: usize,
    pub suspicious: usize,
}

impl SessionCounts {
    pub fn of<'a>(sessions: impl IntoIterator<Item = &'a SessionView>) -> Self {
        let mut c = Self::default();
        for s in sessions {
            c.all += 1;
            match s.state {
                SessionState::Active => c.active += 1,
                SessionState::Revoked => c.revoked += 1,
                SessionState::Expired => c.expired += 1,
            }
            c.suspicious += usize::from(s.suspicious);
        }
        c
    }
}

impl SessionList {
    pub fn sessions(&self) -> impl Iterator<Item = &SessionView> {
        self.devices.iter().flat_map(|d| d.sessions.iter())
    }
}

/// The order of a session list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum SessionSort {
    /// Most recently used first (the default).
    #[default]
    #[serde(rename = "-last_used")]
    NewestUse,
    #[serde(rename = "last_used")]
    OldestUse,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct SessionQuery {
    /// Only sessions in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SessionState>,
    /// Only suspicious (`true`) or only unsuspicious (`false`) sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<bool>,
    /// `-last_used` (default) or `last_used`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<SessionSort>,
    /// At most this many sessions (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The sessions a call revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Revoked {
    pub revoked: Vec<SessionId>,
}

/// One generation (one refresh token) of a family, with the events that concern it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Generation {
    #[ts(as = "f64")]
    pub generation: i64,
    pub state: LinkState,
    /// Why it was retired: `rotated` (by the next generation), or for the last generation of
    /// a revoked family the family's reason (`reuse_detected`, `token_revoked`, a staff
    /// reason, …).
    pub retired_reason: Option<String>,
    pub issued_at: Timestamp,
    pub issued_to: Place,
    pub used_at: Option<Timestamp>,
    pub used_by: Option<Place>,
    pub expires_at: Timestamp,
    /// Times it was replayed within the grace window.
    #[ts(as = "f64")]
    pub grace_replays: i64,
    pub events: Vec<SecurityEvent>,
}

/// A page of a family's rotation chain, newest generation first, and the session's recent
/// events (`GET /me/sessions/{id}/family`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Family {
    pub session: SessionView,
    pub generations: Vec<Generation>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[ts(as = "Option<f64>")]
    pub next_before: Option<i64>,
    /// The session's events, newest first (at most 200; `/events?session_id=` pages further).
    pub events: Vec<SecurityEvent>,
}

/// Which page of a family's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ChainQuery {
    /// Only generations older than this one (the `next_before` of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// At most this many generations (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// A page of security events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EventList {
    pub events: Vec<SecurityEvent>,
    pub next_before: Option<String>,
}

/// Which of the account's events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct EventQuery {
    /// Only events of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Only events of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
    /// The `next_before` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// At most this many events (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}
