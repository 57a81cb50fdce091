//! latchkeyd: an OAuth 2.1 / OpenID Connect authorization server whose refresh tokens rotate on
//! every use, grouped in families that are revoked as a whole when a retired token is replayed.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod dpop;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod http;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod pusher;
pub mod scope;
pub mod secret;
pub mod server;
pub mod service;
pub mod signals;
pub mod ssf;
pub mod store;
pub mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Settings;
pub use server::Server;
