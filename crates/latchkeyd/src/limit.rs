//! Per-address rate limits, decided in memory before a request does any database work, so that
//! a flood of requests cannot turn into a flood of writes (sign-in forms, audit records, events).
//!
//! Each limit is a GCRA (generic cell rate algorithm): per address a "theoretical arrival
//! time" that each charged request pushes one interval further; a request is let through while
//! that time is at most `burst` intervals ahead of now. The token endpoint charges only the
//! requests that fail (a client refreshing at any rate with good tokens is never slowed, and a
//! flood of bad ones is cut off), so checking and charging are separate steps here, which
//! keyed limiters such as governor's do as one.
//!
//! Addresses are keyed as IPv4 /32 and IPv6 /64: one IPv6 host usually holds a whole /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::Millis;
use crate::config::RateLimit;

/// An address as the limits count it: IPv4 as is, IPv6 by its /64 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & (u128::MAX << 64);
                AddressKey(IpAddr::V6(net.into()))
            }
            v4 => AddressKey(v4),
        }
    }

    /// Parses an address as recorded on requests (`Origin::ip`).
    pub fn parse(ip: &str) -> Option<Self> {
        ip.parse().ok().map(Self::of)
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(net) => write!(f, "{net}/64"),
            IpAddr::V4(ip) => write!(f, "{ip}"),
        }
    }
}

/// Past this many addresses the table drops those whose limit has fully recovered.
const PRUNE_AT: usize = 50_000;

pub struct Limiter {
    /// Milliseconds per request at the sustained rate.
    interval: Millis,
    /// How far ahead of now an address's arrival time may run: `burst - 1` intervals.
    tolerance: Millis,
    arrivals: Mutex<HashMap<AddressKey, Millis>>,
}

impl Limiter {
    /// `None` when the limit is switched off (a rate of 0).
    pub fn new(limit: &RateLimit) -> Option<Self> {
        if limit.per_minute == 0 {
            return None;
        }
        let interval = (60_000 / Millis::from(limit.per_minute)).max(1);
        Some(Self {
            interval,
            tolerance: interval * Millis::from(limit.burst.max(1) - 1),
            arrivals: Mutex::new(HashMap::new()),
        })
    }

    /// Would a request from `key` be let through now? If not, in how many milliseconds.
    pub fn check(&self, key: AddressKey, now: Millis) -> Result<(), Millis> {
        let arrivals = self.arrivals.lock().expect("limiter lock");
        match arrivals.get(&key) {
            Some(&tat) if tat - self.tolerance > now => Err(tat - self.tolerance - now),
            _ => Ok(()),
        }
    }

    /// Counts a request from `key`; whether it was within the limit.
    pub fn charge(&self, key: AddressKey, now: Millis) -> Result<(), Millis> {
        let mut arrivals = self.arrivals.lock().expect("limiter lock");
        if arrivals.len() >= PRUNE_AT {
            arrivals.retain(|_, tat| *tat > now);
        }
        let tat = arrivals.get(&key).copied().unwrap_or(now).max(now);
        if tat - self.tolerance > now {
            return Err(tat - self.tolerance - now);
        }
        arrivals.insert(key, tat + self.interval);
        Ok(())
    }

    /// Forgets addresses whose limit has fully recovered.
    pub fn prune(&self, now: Millis) {
        self.arrivals
            .lock()
            .expect("limiter lock")
            .retain(|_, tat| *tat > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AddressKey {
        AddressKey::parse(s).unwrap()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let l = Limiter::new(&RateLimit {
            per_minute: 60,
            burst: 3,
        })
        .unwrap();
        let a = key("203.0.113.7");
        for _ in 0..3 {
            assert!(l.check(a, 0).is_ok());
            assert!(l.charge(a, 0).is_ok());
        }
        assert_eq!(l.charge(a, 0), Err(1000));
        assert_eq!(l.check(a, 0), Err(1000), "a refusal is not charged");
        assert!(l.charge(key("203.0.113.8"), 0).is_ok(), "another address");
        assert!(l.check(a, 1000).is_ok());
        assert!(l.charge(a, 1000).is_ok());
        assert!(l.charge(a, 1000).is_err());
        l.prune(10_000);
        assert!(l.arrivals.lock().unwrap().is_empty());
        assert!(Limiter::new(&RateLimit {
            per_minute: 0,
            burst: 3
        })
        .is_none());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
    }
}
