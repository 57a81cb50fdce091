//! The contract between latchkeyd and its clients. latchkeyd writes these types, and the client
//! core, the CLI and the desktop app read them, so a renamed or removed variant breaks their
//! build rather than their output.

mod event;

pub use event::{EventKind, Severity, UnknownName};
