//! The contract between latchkeyd and its clients. latchkeyd writes these types, the client
//! core, the CLI and the desktop app read them, the OpenAPI document (feature `utoipa`) and
//! the UI's TypeScript types (`ui/src/generated/`, by ts-rs) are rendered from them. A renamed
//! field or variant breaks their build rather than their output.

mod account;
mod error;
mod event;
mod ids;
mod names;
mod secret;
mod session;
mod support;
mod time;

pub use account::{
    ChainQuery, Device, DeviceGroup, EventList, EventQuery, Family, Generation, Place, Profile,
    Revocation, Revoked, SecurityEvent, SessionCounts, SessionList, SessionQuery, SessionSort,
    SessionView,
};
pub use error::{ApiErrorBody, ApiErrorCode};
pub use event::{EventKind, Severity};
pub use ids::{ClientId, SessionId, UserId};
pub use names::UnknownName;
pub use secret::Secret;
pub use session::{LinkState, SessionState};
pub use support::{
    ActorKind, AdminEventQuery, AuditPage, AuditQuery, AuditRecord, ReasonBody, RevokedBy, Role,
    UserList, UserQuery, UserSessions, UserSummary,
};
pub use time::Timestamp;
