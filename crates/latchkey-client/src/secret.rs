//! The workspace's one secret wrapper (`latchkey_proto::Secret`): `Debug` shows
//! `Secret(<redacted>)`.

pub use latchkey_proto::Secret;
