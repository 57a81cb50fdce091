//! Suspicion signals: signs that a refresh-token family is in more than one pair of hands.
//!
//! Each refresh is compared with the use before it (the presented token was issued by that
//! use, so its `issued_*` columns are the previous address, user agent and time). Addresses are
//! compared by network prefix, not one by one, and user agents without their version numbers,
//! so that a phone moving between cell towers or an app updating itself stays quiet.

use std::net::IpAddr;
use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::clock::{secs, Millis};
use crate::config::SignalPolicy;
use crate::store::events::{EventKind, Severity};
use crate::store::Origin;

/// The signal kinds as an SQL list, for `kind IN (…)`.
pub static SQL_KINDS: LazyLock<String> = LazyLock::new(|| {
    EventKind::signals()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
});

/// Where and when the family was last used before this refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorUse {
    pub at: Millis,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One refresh, as the signals see it.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub prior: &'a PriorUse,
    /// Refreshes of the family in the current one-minute window, this one included.
    pub in_window: i64,
    /// The generation this refresh issued.
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub kind: EventKind,
    pub severity: Severity,
    pub details: Value,
}

/// The network an address belongs to: the address masked to the policy's prefix, shown as
/// `addr/len`. Compared as it is, and written out only for a signal that is raised: every
/// refresh is assessed on the rotation writer, which every refresh waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    len: u32,
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn network(ip: IpAddr, policy: &SignalPolicy) -> Network {
    match ip {
        IpAddr::V4(v4) => {
            let len = u32::from(policy.ipv4_prefix_len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let addr = std::net::Ipv4Addr::from(u32::from(v4) & mask).into();
            Network { addr, len }
        }
        IpAddr::V6(v6) => {
            let len = u32::from(policy.ipv6_prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let addr = std::net::Ipv6Addr::from(u128::from(v6) & mask).into();
            Network { addr, len }
        }
    }
}

/// Whether two user agents are the same software, their version numbers aside:
/// `latchkey/0.2.1 (Linux)` and `latchkey/0.3.0 (Linux)` are.
fn same_software(a: &str, b: &str) -> bool {
    fn software(ua: &str) -> impl Iterator<Item = char> + '_ {
        ua.chars()
            .filter(|c| !c.is_ascii_digit() && *c != '.' && *c != '_')
    }
    software(a).eq(software(b))
}

/// The signals raised by one refresh.
pub fn assess(policy: &SignalPolicy, used: &Use<'_>, origin: &Origin, now: Millis) -> Vec<Signal> {
    let mut found = Vec::new();
    let prior = used.prior;
    let parse = |ip: &Option<String>| ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
    if let (Some(before), Some(after)) = (parse(&prior.ip), parse(&origin.ip)) {
        let (net_before, net_after) = (network(before, policy), network(after, policy));
        if net_before != net_after {
            let apart = now - prior.at;
            let concurrent = apart <= secs(policy.concurrent_window_secs);
            found.push(Signal {
                kind: if concurrent {
                    EventKind::ConcurrentUse
                } else {
                    EventKind::AddressChanged
                },
                severity: if concurrent {
                    Severity::High
                } else {
                    Severity::Low
                },
                details: json!({
                    "generation": used.generation,
                    "previous_ip": before.to_string(),
                    "previous_network": net_before.to_string(),
                    "ip": after.to_string(),
                    "network": net_after.to_string(),
                    "seconds_apart": apart.div_euclid(1000),
                    "window_secs": policy.concurrent_window_secs,
                }),
            });
        }
    }
    if let (Some(before), Some(after)) = (&prior.user_agent, &origin.user_agent) {
        if !same_software(before, after) {
            found.push(Signal {
                kind: EventKind::UserAgentChanged,
                severity: Severity::Medium,
                details: json!({
                    "generation": used.generation,
                    "previous_user_agent": before,
                    "user_agent": after,
                }),
            });
        }
    }
    // Raised once per window, when the count first passes the threshold.
    if used.in_window == i64::from(policy.storm_refreshes_per_minute) + 1 {
        found.push(Signal {
            kind: EventKind::RefreshStorm,
            severity: Severity::Medium,
            details: json!({
                "generation": used.generation,
                "refreshes_in_window": used.in_window,
                "window_secs": 60,
                "threshold": policy.storm_refreshes_per_minute,
            }),
        });
    }
    found
}

/// A device sign-in (RFC 8628) approved from another network than the polling device's: the
/// usual case for the flow (a phone approves for a server), so informational only.
pub fn approved_elsewhere(
    policy: &SignalPolicy,
    device_ip: Option<&str>,
    approver_ip: Option<&str>,
) -> Option<Signal> {
    let device = device_ip?.parse::<IpAddr>().ok()?;
    let approver = approver_ip?.parse::<IpAddr>().ok()?;
    let (net, approver_net) = (network(device, policy), network(approver, policy));
    (net != approver_net).then(|| Signal {
        kind: EventKind::ApprovedElsewhere,
        severity: Severity::Info,
        details: json!({
            "ip": device.to_string(),
            "network": net.to_string(),
            "approver_ip": approver.to_string(),
            "approver_network": approver_net.to_string(),
        }),
    })
}

/// An event in plain words, for people reading a device list or an audit trail.
pub fn describe(kind: EventKind, d: &Value) -> String {
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    let n = |k: &str| d.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    match kind {
        EventKind::SessionCreated => "Signed in on this device".into(),
        EventKind::SignedIn => "Signed in with email and password".into(),
        EventKind::SigninFailed => "A sign-in with a wrong password".into(),
        EventKind::SigninThrottled if d.get("summary").is_some() => format!(
            "{} sign-in attempts were blocked within {} minutes after too many failures {}",
            n("attempts"),
            (n("window_end") - n("window_start")) / 60_000,
            if s("limited") == "address" {
                "from one network"
            } else {
                "for this account"
            }
        ),
        EventKind::SigninThrottled => "Sign-in attempts blocked after too many failures".into(),
        EventKind::SessionRevoked => format!("Session revoked ({})", s("reason")),
        EventKind::SessionEvicted => "Signed out: too many sessions on the account, this one was used least recently".into(),
        EventKind::ReuseDetected => format!(
            "A refresh token that had already been used (generation {}) was presented again, so the session was revoked: someone else may have a copy",
            n("replayed_generation")
        ),
        EventKind::CodeReuseDetected => "A sign-in code was used twice; the session it started was revoked".into(),
        EventKind::RevokedTokenUsed => "Someone still tried to use this revoked session".into(),
        EventKind::GraceReplay => "The app retried a refresh whose answer it lost; allowed once".into(),
        EventKind::AddressChanged => format!(
            "Used from a new network ({} after {})",
            s("network"),
            s("previous_network")
        ),
        EventKind::ConcurrentUse => format!(
            "Used from two networks {} seconds apart ({} and {}): the token may be in two places",
            n("seconds_apart"),
            s("previous_network"),
            s("network")
        ),
        EventKind::UserAgentChanged => format!(
            "Used by different software ({} after {})",
            s("user_agent"),
            s("previous_user_agent")
        ),
        EventKind::RefreshStorm => format!(
            "Refreshed {} times in a minute; an honest app refreshes every few minutes",
            n("refreshes_in_window")
        ),
        EventKind::NewDevice => "Signed in from a device not seen on this account before".into(),
        EventKind::KeyMismatch => "A refresh was signed by another device's key".into(),
        EventKind::ApprovedElsewhere => format!(
            "Signed in with a code approved from another network ({}) than the device's ({})",
            s("approver_network"),
            s("network")
        ),
        EventKind::SignalAcknowledged => "Marked as \"this was me\"".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(ip: &str, ua: &str, at: Millis) -> PriorUse {
        PriorUse {
            at,
            ip: Some(ip.into()),
            user_agent: Some(ua.into()),
        }
    }

    fn used(prior: &PriorUse, in_window: i64) -> Use<'_> {
        Use {
            prior,
            in_window,
            generation: 7,
        }
    }

    fn origin(ip: &str, ua: &str) -> Origin {
        Origin {
            ip: Some(ip.into()),
            user_agent: Some(ua.into()),
        }
    }

    #[test]
    fn same_network_and_an_updated_app_stay_quiet() {
        let p = SignalPolicy::default();
        let before = prior("192.0.2.10", "latchkey/0.1.0 (Linux)", 0);
        let u = used(&before, 1);
        let now = origin("192.0.2.99", "latchkey/0.2.13 (Linux)");
        assert!(assess(&p, &u, &now, 1_000).is_empty());
    }

    #[test]
    fn another_network_soon_is_concurrent_use_later_only_a_change() {
        let p = SignalPolicy::default();
        let before = prior("192.0.2.10", "app", 0);
        let u = used(&before, 1);
        let soon = assess(&p, &u, &origin("198.51.100.7", "app"), 30_000);
        assert_eq!(soon[0].kind, EventKind::ConcurrentUse);
        assert_eq!(soon[0].severity, Severity::High);
        assert_eq!(soon[0].details["previous_network"], "192.0.2.0/24");
        let later = assess(&p, &u, &origin("198.51.100.7", "app"), 3_600_000);
        assert_eq!(later[0].kind, EventKind::AddressChanged);
        assert_eq!(later[0].severity, Severity::Low);
    }

    #[test]
    fn ipv6_compares_by_prefix() {
        let p = SignalPolicy::default();
        let before = prior("2001:db8:1:2::1", "app", 0);
        let u = used(&before, 1);
        assert!(assess(&p, &u, &origin("2001:db8:1:ffff::9", "app"), 1).is_empty());
        assert_eq!(
            assess(&p, &u, &origin("2001:db8:2::1", "app"), 1)[0].kind,
            EventKind::ConcurrentUse
        );
    }

    #[test]
    fn a_storm_is_raised_once_per_window() {
        let p = SignalPolicy::default();
        let limit = i64::from(p.storm_refreshes_per_minute);
        let before = prior("10.0.0.1", "a", 0);
        let at = |n| assess(&p, &used(&before, n), &origin("10.0.0.1", "a"), 1);
        assert!(at(limit).is_empty());
        assert_eq!(at(limit + 1)[0].kind, EventKind::RefreshStorm);
        assert!(at(limit + 2).is_empty());
    }

    #[test]
    fn other_software_is_a_signal() {
        let p = SignalPolicy::default();
        let before = prior("10.0.0.1", "latchkey/1.0", 0);
        let u = used(&before, 1);
        let s = assess(&p, &u, &origin("10.0.0.1", "curl/8.5.0"), 1);
        assert_eq!(s[0].kind, EventKind::UserAgentChanged);
    }

    #[test]
    fn a_code_approved_from_another_network_is_noted_not_alarming() {
        let p = SignalPolicy::default();
        assert_eq!(
            approved_elsewhere(&p, Some("192.0.2.10"), Some("192.0.2.77")),
            None
        );
        assert_eq!(approved_elsewhere(&p, Some("192.0.2.10"), None), None);
        let noted = approved_elsewhere(&p, Some("192.0.2.10"), Some("198.51.100.7")).unwrap();
        assert_eq!(noted.kind, EventKind::ApprovedElsewhere);
        assert_eq!(noted.severity, Severity::Info);
        assert!(!noted.severity.is_alarming());
        assert_eq!(
            describe(noted.kind, &noted.details),
            "Signed in with a code approved from another network (198.51.100.0/24) than the device's (192.0.2.0/24)"
        );
    }
}
