//! Latchkey's client core, shared by the `latchkey` CLI and the desktop app.
//!
//! - [`login`]: RFC 8252 loopback sign-in with PKCE in the system browser, or with a code
//!   entered in a browser elsewhere (RFC 8628).
//! - [`keychain`]: refresh tokens only in the OS keychain, probed at start, never a silent
//!   plaintext fallback.
//! - [`Latchkey::access_token`]: refresh ahead of expiry under a cross-process lock, persisting
//!   the rotated refresh token before its access token is used.
//! - [`dpop`]: a device key per account, in the keychain; every token request and API call
//!   proves possession of it (RFC 9449), so a copied refresh token is useless elsewhere.
//! - [`profiles`]: several accounts on several servers, no secrets in the file.
//! - [`api`]: latchkeyd's account and support APIs, in latchkey-proto's types.
//! - [`clock`]: the one source of "now".

pub mod api;
pub mod browser;
mod client;
pub mod clock;
pub mod discovery;
pub mod dpop;
mod error;
pub mod keychain;
mod lock;
pub mod login;
pub mod loopback;
pub mod paths;
pub mod profiles;
mod secret;

pub use client::{AccountStatus, CodeLoginOptions, Latchkey, LoginOptions, TokenState};
pub use error::{Error, Result};
pub use latchkey_proto as proto;
pub use secret::Secret;
