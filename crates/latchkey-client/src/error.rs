//! What can go wrong, in words a person can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No account is signed in (or the named one does not exist).
    #[error("{0}")]
    NotSignedIn(String),
    /// The server ended the session: revoked, expired, or its token was reused elsewhere.
    #[error("{0}")]
    SignedOut(String),
    /// No usable keychain; nothing was stored.
    #[error("{message}\n  fix: {fix}")]
    Keychain { message: String, fix: String },
    /// The browser step did not complete: timed out, cancelled, or refused by the server.
    #[error("{0}")]
    SignIn(String),
    /// The server could not be reached or answered something unusable.
    #[error("{0}")]
    Server(String),
    /// The server does not offer this (e.g. the account API on a plain OAuth server).
    #[error("{0}")]
    Unsupported(String),
    /// The request was refused by the account API (not found, forbidden, bad input).
    #[error("{0}")]
    Refused(String),
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The CLI's exit code for this error (documented in `latchkey --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotSignedIn(_) | Error::SignedOut(_) => 3,
            Error::Keychain { .. } => 4,
            Error::Server(_) | Error::Unsupported(_) => 5,
            Error::SignIn(_) => 6,
            Error::Refused(_) => 7,
            Error::Io { .. } | Error::Config(_) => 1,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display names the URL, never headers or bodies.
        Error::Server(format!("cannot reach the server: {e}"))
    }
}
