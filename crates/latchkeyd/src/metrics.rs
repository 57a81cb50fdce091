//! Prometheus metrics, one registry per server so tests in one process stay independent.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    /// The hot path's counters, looked up once instead of per request.
    refresh_ok: Counter,
    code_ok: Counter,
    pub grants: Family<GrantLabels, Counter>,
    pub grant_seconds: Histogram,
    pub signins: Family<OutcomeLabels, Counter>,
    pub families_revoked: Family<OutcomeLabels, Counter>,
    /// Requests refused by a per-address limit, by limit (`authorize`, `token_failures`).
    pub rate_limited: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        let grants = Family::<GrantLabels, Counter>::default();
        registry.register(
            "token_grants",
            "Token endpoint grants by type and outcome",
            grants.clone(),
        );
        let grant_seconds = Histogram::new(exponential_buckets(0.0002, 2.0, 14));
        registry.register(
            "token_grant_duration_seconds",
            "Time to answer a token endpoint grant",
            grant_seconds.clone(),
        );
        let signins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "signins",
            "Sign-in form submissions by outcome",
            signins.clone(),
        );
        let families_revoked = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "families_revoked",
            "Token families revoked by the server, by reason",
            families_revoked.clone(),
        );
        let rate_limited = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a per-address rate limit before any database work, by limit",
            rate_limited.clone(),
        );
        let ok = |grant_type: &str| {
            grants
                .get_or_create(&GrantLabels {
                    grant_type: grant_type.into(),
                    outcome: "ok".into(),
                })
                .clone()
        };
        Self {
            registry,
            refresh_ok: ok("refresh_token"),
            code_ok: ok("authorization_code"),
            grants,
            grant_seconds,
            signins,
            families_revoked,
            rate_limited,
        }
    }
}

impl Metrics {
    pub fn grant(&self, grant_type: &str, outcome: &str) {
        let counter = match (grant_type, outcome) {
            ("refresh_token", "ok") => &self.refresh_ok,
            ("authorization_code", "ok") => &self.code_ok,
            _ => {
                self.grants
                    .get_or_create(&GrantLabels {
                        grant_type: grant_type.into(),
                        outcome: outcome.into(),
                    })
                    .inc();
                return;
            }
        };
        counter.inc();
    }

    pub fn outcome(family: &Family<OutcomeLabels, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
