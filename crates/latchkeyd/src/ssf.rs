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

/// The signed SET (JWS compact, `typ: secevent+jwt`), with latchkeyd's token keys.
pub fn sign(keys: &KeyRing, claims: &Value) -> Result<String, TokenError> {
    tokens::sign_jws(keys, SET_TYP, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

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
