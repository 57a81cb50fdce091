//! Shared Signals Framework 1.0 on the wire: event type URIs, delivery methods, and the
//! Security Event Tokens (RFC 8417, profiled by SSF 1.0 §4) made from what the outbox keeps
//! (`store::ssf`).

use serde_json::{json, Value};

use crate::keys::KeyRing;
use crate::store::ssf::{Pending, SESSION_REVOKED, VERIFICATION};
use crate::tokens::{self, TokenError};

pub const SPEC_VERSION: &str = "1_0";
/// RFC 8936: the receiver polls its stream's endpoint.
pub const POLL: &str = "urn:ietf:rfc:8936";
/// RFC 8935: the transmitter posts each SET to the receiver.
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// SSF 1.0 §4.1.1.
pub const SET_TYP: &str = "secevent+jwt";

/// CAEP 1.0 §3.1.
pub const SESSION_REVOKED_URI: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// SSF 1.0 §8.1.4.1.
pub const VERIFICATION_URI: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The event types a receiver may ask for. Verification events come whatever it asks for.
pub const EVENTS_SUPPORTED: [&str; 1] = [SESSION_REVOKED_URI];

/// The outbox's kind of an event type a receiver asks for; `None` for one not supported.
pub fn kind_of(uri: &str) -> Option<&'static str> {
    match uri {
        SESSION_REVOKED_URI => Some(SESSION_REVOKED),
        _ => None,
    }
}

pub fn uri_of(kind: &str) -> Option<&'static str> {
    match kind {
        SESSION_REVOKED => Some(SESSION_REVOKED_URI),
        VERIFICATION => Some(VERIFICATION_URI),
        _ => None,
    }
}

/// The claims of the SET for an event waiting in a stream, for the stream's receiver `aud`.
/// `txn` names the event, the same in every stream's copy (SSF 1.0 §4.1.9); no `exp` and no
/// `sub` (§4.1.2, §4.1.7): the subject is `sub_id`.
pub fn set_claims(issuer: &str, aud: &str, stream_id: &str, event: &Pending) -> Value {
    let iat = event.at.div_euclid(1000);
    let txn = event.jti.split('.').next().unwrap_or(&event.jti);
    let p = &event.payload;
    let (sub_id, body) = match event.kind.as_str() {
        SESSION_REVOKED => (
            json!({
                "format": "complex",
                "user": { "format": "iss_sub", "iss": issuer, "sub": p["user_id"] },
                "session": { "format": "opaque", "id": p["session_id"] },
            }),
            json!({
                "event_timestamp": iat,
                "initiating_entity": p["initiating_entity"],
                "reason_admin": { "en": p["reason"] },
            }),
        ),
        _ => {
            let mut body = json!({});
            if let Some(state) = p["state"].as_str() {
                body["state"] = json!(state);
            }
            (json!({ "format": "opaque", "id": stream_id }), body)
        }
    };
    let uri = uri_of(&event.kind).unwrap_or(VERIFICATION_URI);
    json!({
        "iss": issuer,
        "aud": aud,
        "iat": iat,
        "jti": event.jti,
        "txn": txn,
        "sub_id": sub_id,
        "events": { uri: body },
    })
}

/// Why a push endpoint is refused.
pub type TargetError = &'static str;

/// Checks a push endpoint as a receiver names it: https, or http on a loopback address when the
/// operator allows it for development; no credentials in it, no fragment.
pub fn push_url(endpoint: &str, allow_http_loopback: bool) -> Result<url::Url, TargetError> {
    let url = url::Url::parse(endpoint).map_err(|_| "endpoint_url is not a URL")?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("endpoint_url may carry no credentials and no fragment");
    }
    let host = url.host().ok_or("endpoint_url has no host")?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http_loopback && is_loopback_host(&host) => Ok(url),
        "http" => Err("endpoint_url must be https"),
        _ => Err("endpoint_url must be https"),
    }
}

fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    }
}

/// May latchkeyd connect to this address for a receiver? Not into a private network, the host
/// itself, link-local (cloud metadata services), or anything not unicast and routable: a stream
/// must not make latchkeyd a proxy into where it runs (server-side request forgery).
pub fn public_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (RFC 6598) and benchmarking (RFC 2544).
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // Documentation (2001:db8::/32).
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// Resolves a checked push URL to the one address latchkeyd will connect to: every address the
/// name has must be one it may reach ([`public_address`], or loopback for an allowed http
/// loopback URL). The connection is pinned to it, so a name that resolves differently a moment
/// later (DNS rebinding) cannot redirect it.
pub async fn push_address(
    url: &url::Url,
    allow_http_loopback: bool,
) -> Result<std::net::SocketAddr, TargetError> {
    let host = url.host_str().ok_or("endpoint_url has no host")?;
    let port = url
        .port_or_known_default()
        .ok_or("endpoint_url has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| "endpoint_url's host does not resolve")?
        .collect();
    let loopback_ok = allow_http_loopback && url.scheme() == "http";
    let allowed =
        |a: &std::net::SocketAddr| public_address(a.ip()) || (loopback_ok && a.ip().is_loopback());
    match addrs.first() {
        None => Err("endpoint_url's host does not resolve"),
        Some(_) if !addrs.iter().all(allowed) => Err(
            "endpoint_url resolves to a private, loopback or link-local address, which latchkeyd does not call",
        ),
        Some(first) => Ok(*first),
    }
}

/// The signed SET (JWS compact, `typ: secevent+jwt`), with latchkeyd's token keys.
pub fn sign(keys: &KeyRing, claims: &Value) -> Result<String, TokenError> {
    tokens::sign_jws(keys, SET_TYP, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_endpoints_stay_out_of_private_networks() {
        use std::net::IpAddr;
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!public_address(ip.parse::<IpAddr>().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(public_address(ip.parse::<IpAddr>().unwrap()), "{ip}");
        }
        assert!(push_url("https://receiver.example.com/events", false).is_ok());
        assert!(push_url("http://receiver.example.com/events", true).is_err());
        assert!(push_url("http://127.0.0.1:9000/events", false).is_err());
        assert!(push_url("http://127.0.0.1:9000/events", true).is_ok());
        assert!(push_url("https://user:pw@receiver.example.com/", false).is_err());
        assert!(push_url("ftp://receiver.example.com/", false).is_err());
    }

    #[test]
    fn a_session_revocation_names_the_user_and_the_session() {
        let event = Pending {
            jti: "ev1.st1".into(),
            kind: SESSION_REVOKED.into(),
            at: 1_700_000_000_123,
            payload: json!({
                "user_id": "u1", "session_id": "s1",
                "initiating_entity": "admin", "reason": "lost laptop",
            }),
        };
        let set = set_claims("https://login.example.com", "receiver", "st1", &event);
        assert_eq!(set["txn"], "ev1");
        assert_eq!(set["iat"], 1_700_000_000);
        assert!(set.get("exp").is_none() && set.get("sub").is_none());
        assert_eq!(set["sub_id"]["user"]["sub"], "u1");
        assert_eq!(set["sub_id"]["session"]["id"], "s1");
        let revoked = &set["events"][SESSION_REVOKED_URI];
        assert_eq!(revoked["initiating_entity"], "admin");
        assert_eq!(revoked["reason_admin"]["en"], "lost laptop");
    }
}
