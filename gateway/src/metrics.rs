//! The gateway's Prometheus metrics, in a registry of its own (pingora 0.9.1's core does not
//! use prometheus, so nothing else registers here), served by [`crate::admin`].
//! Every label has a small fixed set of values: never paths, users, kids or tokens.
//! The process metrics and `taskmgmt_build_info{service="gateway"}` come from
//! [`platform::process_metrics`].

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The series every allowed request touches, resolved once. `with_label_values` hashes the
/// label values, takes the family's read lock and clones an `Arc` (an atomic shared by every
/// worker thread) on each call; a resolved handle is one atomic add.
#[derive(Clone)]
pub struct RequestMetrics {
    pub decision_allow: IntCounter,
    pub decision_public: IntCounter,
    pub cache_hit: IntCounter,
    pub cache_miss: IntCounter,
    pub upstream_2xx: IntCounter,
    /// `gateway_requests_total{route, status="2xx"}`: protected, public.
    requests_2xx: [IntCounter; 2],
    /// `gateway_request_duration_seconds{route}`: protected, public.
    durations: [Histogram; 2],
    requests: IntCounterVec,
}

impl RequestMetrics {
    pub fn new(m: &Metrics) -> Self {
        Self {
            decision_allow: m.decisions.with_label_values(&["allow", "ok"]),
            decision_public: m.decisions.with_label_values(&["public", "public"]),
            cache_hit: m.cache_lookups.with_label_values(&["hit"]),
            cache_miss: m.cache_lookups.with_label_values(&["miss"]),
            upstream_2xx: m.upstream_responses.with_label_values(&["2xx"]),
            requests_2xx: [
                m.requests.with_label_values(&["protected", "2xx"]),
                m.requests.with_label_values(&["public", "2xx"]),
            ],
            durations: [
                m.request_duration.with_label_values(&["protected"]),
                m.request_duration.with_label_values(&["public"]),
            ],
            requests: m.requests.clone(),
        }
    }

    /// One answered request: `gateway_requests_total` by route and [`status_class`], and its
    /// duration in seconds.
    pub fn count(&self, public: bool, status: u16, seconds: f64) {
        let route = usize::from(public);
        if (200..300).contains(&status) {
            self.requests_2xx[route].inc();
        } else {
            self.requests.with_label_values(&[["protected", "public"][route], status_class(status)]).inc();
        }
        self.durations[route].observe(seconds);
    }
}

/// The `status` label: `2xx`..`5xx`, or `none` when no response was written (status 0).
pub fn status_class(status: u16) -> &'static str {
    if status == 0 { "none" } else { platform::metrics::status_class(status) }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `result` = allow | deny | unavailable | public; `reason` = ok | a `Rejection::reason()` |
    /// no_keyring | auth_unavailable | rate_limited | public.
    pub decisions: IntCounterVec,
    /// `result` = hit | miss.
    pub cache_lookups: IntCounterVec,
    /// `outcome` = valid | invalid | error | timeout | rate_limited.
    pub fallback_calls: IntCounterVec,
    pub fallback_duration: Histogram,
    pub coalesced_waiters: IntCounter,
    /// `outcome` = success | failure.
    pub keyring_refreshes: IntCounterVec,
    pub keyring_loaded: IntGauge,
    pub revocations_live: IntGauge,
    /// Seconds since the last successful revocation pull; before the first, since the start.
    pub revocation_list_age: IntGauge,
    /// `jwt.refresh_interval_secs` for a Secrets Manager keyring, 0 for a fixed one (`JWT_SECRET`),
    /// so an alert on `gateway_keyring_age_seconds` can tell "stale" from "never refreshed".
    pub keyring_refresh_interval: IntGauge,
    /// `outcome` = success | failure.
    pub dns_resolutions: IntCounterVec,
    /// `class` = 1xx..5xx of what task-svc answered.
    pub upstream_responses: IntCounterVec,
    /// `outcome` = success | failure.
    pub revocation_pulls: IntCounterVec,
    /// `status` = class of what the client got; `route` = public | protected.
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
}

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Registers `metric`. The definitions are static, so the `expect`s can only fire on a
/// programming error, which the unit tests below catch.
fn register<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("static metric definition is valid");
    r.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help))
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

/// `gateway_auth_decisions_total`, with every decision's series at 0 from the start: a series
/// born at 1 has no earlier sample, so rate() and increase() would never see the first forged
/// or expired token.
fn decisions(r: &Registry) -> IntCounterVec {
    let decisions = counter_vec(
        r,
        "gateway_auth_decisions_total",
        "Authentication decisions by result and reason",
        &["result", "reason"],
    );
    decisions.with_label_values(&["allow", "ok"]);
    decisions.with_label_values(&["public", "public"]);
    for r in platform::keyring::Rejection::ALL {
        decisions.with_label_values(&["deny", r.reason()]);
    }
    for u in crate::decision::Unavailable::ALL {
        decisions.with_label_values(&["unavailable", u.reason()]);
    }
    decisions
}

impl Metrics {
    /// Builds the registry: the gateway's families, then the process metrics and
    /// `taskmgmt_build_info`. (Long only because it lists one definition per family.)
    pub fn new() -> Self {
        let r = Registry::new();
        let metrics = Self {
            decisions: decisions(&r),
            cache_lookups: counter_vec(
                &r,
                "gateway_token_cache_lookups_total",
                "Verified-token cache lookups by result",
                &["result"],
            ),
            fallback_calls: counter_vec(
                &r,
                "gateway_fallback_calls_total",
                "Calls to auth-svc /auth/validate by outcome",
                &["outcome"],
            ),
            fallback_duration: register(
                &r,
                Histogram::with_opts(latency(
                    "gateway_fallback_duration_seconds",
                    "Latency of calls to auth-svc /auth/validate",
                )),
            ),
            coalesced_waiters: register(
                &r,
                IntCounter::new(
                    "gateway_fallback_coalesced_waiters_total",
                    "Requests that waited for another request's identical auth-svc call instead of making their own",
                ),
            ),
            keyring_refreshes: counter_vec(
                &r,
                "gateway_keyring_refreshes_total",
                "Keyring loads and refreshes by outcome",
                &["outcome"],
            ),
            keyring_loaded: gauge(&r, "gateway_keyring_loaded", "1 when a keyring is loaded (the gateway is ready)"),
            keyring_refresh_interval: gauge(
                &r,
                "gateway_keyring_refresh_interval_seconds",
                "Seconds between keyring refreshes from Secrets Manager; 0 when the keyring is fixed (JWT_SECRET)",
            ),
            dns_resolutions: counter_vec(
                &r,
                "gateway_dns_resolutions_total",
                "Re-resolutions of the auth-svc name by outcome",
                &["outcome"],
            ),
            revocation_pulls: counter_vec(
                &r,
                "gateway_revocation_pulls_total",
                "Pulls of the revocation list from auth-svc by outcome",
                &["outcome"],
            ),
            revocations_live: gauge(
                &r,
                "gateway_revocations_live",
                "Revocations in force (revoked tokens and per-user cut-offs)",
            ),
            revocation_list_age: gauge(
                &r,
                "gateway_revocation_list_age_seconds",
                "Seconds since the revocation list was last pulled successfully (since the start until the first pull)",
            ),
            upstream_responses: counter_vec(
                &r,
                "gateway_upstream_responses_total",
                "Responses from task-svc by status class",
                &["class"],
            ),
            requests: counter_vec(
                &r,
                "gateway_requests_total",
                "Requests answered by the gateway by route kind and status class",
                &["route", "status"],
            ),
            request_duration: register(
                &r,
                HistogramVec::new(
                    latency("gateway_request_duration_seconds", "Request latency through the gateway by route kind"),
                    &["route"],
                ),
            ),
            registry: r,
        };
        platform::process_metrics::register(&metrics.registry, "gateway", env!("CARGO_PKG_VERSION"))
            .expect("a fresh registry has no process metrics yet");
        platform::tracing_otel::register(&metrics.registry).expect("a fresh registry has no span export metrics yet");
        metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exposition; with the `count-allocations` feature, the heap counters after it.
    pub fn render(&self) -> String {
        let mut text = platform::metrics::render(&self.registry);
        if let Some(heap) = crate::heap_count::current() {
            text.push_str(&crate::heap_count::exposition(&heap));
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_series_exists_at_zero_before_the_first_decision() {
        let text = Metrics::new().render();
        for r in platform::keyring::Rejection::ALL {
            let series = format!(r#"gateway_auth_decisions_total{{reason="{}",result="deny"}} 0"#, r.reason());
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        for u in crate::decision::Unavailable::ALL {
            let series = format!(r#"gateway_auth_decisions_total{{reason="{}",result="unavailable"}} 0"#, u.reason());
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert!(text.contains(r#"gateway_auth_decisions_total{reason="ok",result="allow"} 0"#), "{text}");
    }

    #[test]
    fn all_families_render() {
        let m = Metrics::new();
        m.decisions.with_label_values(&["deny", "expired"]).inc();
        m.cache_lookups.with_label_values(&["hit"]).inc();
        m.fallback_calls.with_label_values(&["valid"]).inc();
        m.keyring_refreshes.with_label_values(&["success"]).inc();
        m.dns_resolutions.with_label_values(&["success"]).inc();
        m.upstream_responses.with_label_values(&["2xx"]).inc();
        m.requests.with_label_values(&["protected", "2xx"]).inc();
        m.request_duration.with_label_values(&["protected"]).observe(0.01);
        let text = m.render();
        assert!(text.contains(r#"gateway_auth_decisions_total{reason="expired",result="deny"} 1"#), "{text}");
        assert!(text.contains("gateway_revocation_list_age_seconds"), "{text}");
        assert!(text.contains("gateway_fallback_coalesced_waiters_total 0"), "{text}");
        assert!(text.contains(r#"taskmgmt_build_info{service="gateway",version=""#), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("gateway_keyring_refresh_interval_seconds 0"), "{text}");
    }

    #[test]
    fn resolved_handles_count_in_the_same_series() {
        let m = Metrics::new();
        let hot = RequestMetrics::new(&m);
        hot.decision_allow.inc();
        hot.cache_hit.inc();
        hot.count(false, 200, 0.001);
        hot.count(true, 200, 0.001);
        hot.count(false, 502, 0.001);
        let text = m.render();
        assert!(text.contains(r#"gateway_auth_decisions_total{reason="ok",result="allow"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_token_cache_lookups_total{result="hit"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_requests_total{route="protected",status="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_requests_total{route="public",status="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_requests_total{route="protected",status="5xx"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_request_duration_seconds_count{route="protected"} 2"#), "{text}");
    }
}
