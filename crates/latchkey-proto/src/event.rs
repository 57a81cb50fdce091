//! Security events: what can happen to a session or an account, and how much it matters.

use serde::{Deserialize, Serialize};

crate::names! {
    /// How much an event matters to the account's owner; ordered from `Info` to `High`.
    #[derive(PartialOrd, Ord)]
    pub enum Severity {
        Info = "info",
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

impl Severity {
    /// Medium and high signals make a family suspicious until someone says "this was me".
    pub fn is_alarming(self) -> bool {
        self >= Self::Medium
    }
}

/// Declares [`EventKind`] once: each variant, its wire name, and whether it is a signal.
macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, signal: $signal:literal;)*) => {
        /// What happened. Signals are the kinds that say a family may be in more than one pair
        /// of hands: they can make it suspicious, and can be acknowledged.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[derive(::ts_rs::TS)]
        pub enum EventKind {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(Self::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            pub const fn is_signal(self) -> bool {
                match self {
                    $(Self::$variant => $signal,)*
                }
            }
        }
    };
}

event_kinds! {
    /// A sign-in started a session on a device.
    SessionCreated = "session_created", signal: false;
    /// A password sign-in succeeded.
    SignedIn = "signed_in", signal: false;
    /// A password sign-in failed.
    SigninFailed = "signin_failed", signal: false;
    /// Sign-in attempts were blocked after too many failures.
    SigninThrottled = "signin_throttled", signal: false;
    /// A session was revoked; `details.reason` says why and by whom.
    SessionRevoked = "session_revoked", signal: false;
    /// The account's session cap signed out its least recently used session.
    SessionEvicted = "session_evicted", signal: false;
    /// A refresh token that had been used already came back: the family was revoked.
    ReuseDetected = "reuse_detected", signal: true;
    /// An authorization code was redeemed twice: its session was revoked.
    CodeReuseDetected = "code_reuse_detected", signal: true;
    /// Someone presented a refresh token of a revoked session.
    RevokedTokenUsed = "revoked_token_used", signal: true;
    /// A replay of the previous refresh token was accepted within the grace window.
    GraceReplay = "grace_replay", signal: false;
    /// The family is used from another network than before.
    AddressChanged = "address_changed", signal: true;
    /// Two networks used the family within a short window.
    ConcurrentUse = "concurrent_use", signal: true;
    /// Other software uses the family (version numbers aside).
    UserAgentChanged = "user_agent_changed", signal: true;
    /// More refreshes per minute than any client needs.
    RefreshStorm = "refresh_storm", signal: true;
    /// A sign-in from a device this account has not used before.
    NewDevice = "new_device", signal: true;
    /// A refresh token bound to a device key came with another key, or none.
    KeyMismatch = "key_mismatch", signal: true;
    /// A sign-in with a code (RFC 8628) was approved from another network than the device's:
    /// the normal case for that flow, shown so that staff can see it.
    ApprovedElsewhere = "approved_elsewhere", signal: true;
    /// Someone said "this was me": the session's signals are cleared.
    SignalAcknowledged = "signal_acknowledged", signal: false;
}

impl EventKind {
    /// The kinds that are signals.
    pub fn signals() -> impl Iterator<Item = EventKind> {
        Self::ALL.iter().copied().filter(|k| k.is_signal())
    }
}

crate::parse_by_name!(EventKind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_goes_by_its_wire_name_both_ways() {
        for &kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        assert!("reuse_detected ".parse::<EventKind>().is_err());
    }

    #[test]
    fn the_signals_are_the_ten_that_question_a_family() {
        let signals: Vec<_> = EventKind::signals().map(EventKind::as_str).collect();
        assert_eq!(
            signals,
            [
                "reuse_detected",
                "code_reuse_detected",
                "revoked_token_used",
                "address_changed",
                "concurrent_use",
                "user_agent_changed",
                "refresh_storm",
                "new_device",
                "key_mismatch",
                "approved_elsewhere",
            ]
        );
    }

    #[test]
    fn severities_order_and_alarm() {
        assert!(Severity::High > Severity::Medium && Severity::Low > Severity::Info);
        let alarming: Vec<_> = Severity::ALL
            .iter()
            .copied()
            .filter(|s| s.is_alarming())
            .collect();
        assert_eq!(alarming, [Severity::Medium, Severity::High]);
        assert_eq!("medium".parse::<Severity>().unwrap(), Severity::Medium);
        assert_eq!(serde_json::to_string(&Severity::Low).unwrap(), "\"low\"");
    }
}
