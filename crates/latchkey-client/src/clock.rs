//! Time is a parameter here as it is in latchkeyd: whether a cached access token is fresh, a
//! DPoP proof's `iat` and when an account was added all ask one [`Clock`]
//! ([`Latchkey::with_clock`](crate::Latchkey::with_clock) replaces the wall clock).

use std::time::{SystemTime, UNIX_EPOCH};

use latchkey_proto::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    fn now_secs(&self) -> i64 {
        self.now().secs()
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Timestamp::from_millis(ms)
    }
}
