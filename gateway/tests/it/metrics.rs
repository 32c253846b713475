//! The metrics move by exactly the expected deltas in a scripted scenario, and the exposition
//! parses.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use testkit::harness::*;

#[tokio::test]
async fn metrics_move_by_the_expected_deltas() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (_, user_id) = login(&stack.auth, "metered").await;
    let before = samples(&metrics_text(&stack.gateway).await);
    let c = client();
    let url = stack.gateway.url_for("/tasks");
    let valid = mint(OLD_SECRET, user_id, 600);
    let expired = mint(OLD_SECRET, user_id, -100);

    assert_eq!(c.get(stack.gateway.url_for("/tasks/health")).send().await.unwrap().status(), 200); // public
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401); // missing
    assert_eq!(c.get(&url).bearer_auth("abc").send().await.unwrap().status(), 401); // malformed, miss
    assert_eq!(c.get(&url).bearer_auth(&expired).send().await.unwrap().status(), 401); // expired, miss
    assert_eq!(c.get(&url).bearer_auth(&valid).send().await.unwrap().status(), 200); // allow, miss
    assert_eq!(c.get(&url).bearer_auth(&valid).send().await.unwrap().status(), 200); // allow, hit
    assert_eq!(c.get(&url).bearer_auth("abc").send().await.unwrap().status(), 401); // malformed, hit (negative cache)

    // The request counters move in pingora's `logging` phase, after the response is written:
    // wait until all seven requests are counted.
    let before_count = sample(&before, r#"gateway_request_duration_seconds_count{route="protected"}"#);
    let text = testkit::wait::until_some("the six protected requests counted", Duration::from_secs(10), || async {
        let text = metrics_text(&stack.gateway).await;
        let counted = sample(&samples(&text), r#"gateway_request_duration_seconds_count{route="protected"}"#);
        (counted - before_count >= 6.0).then_some(text)
    })
    .await;
    let after = samples(&text);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let expected = [
        (r#"gateway_auth_decisions_total{reason="public",result="public"}"#, 1.0),
        (r#"gateway_auth_decisions_total{reason="missing",result="deny"}"#, 1.0),
        (r#"gateway_auth_decisions_total{reason="malformed",result="deny"}"#, 2.0),
        (r#"gateway_auth_decisions_total{reason="expired",result="deny"}"#, 1.0),
        (r#"gateway_auth_decisions_total{reason="ok",result="allow"}"#, 2.0),
        (r#"gateway_token_cache_lookups_total{result="hit"}"#, 2.0),
        (r#"gateway_token_cache_lookups_total{result="miss"}"#, 3.0),
        (r#"gateway_upstream_responses_total{class="2xx"}"#, 3.0),
        (r#"gateway_requests_total{route="public",status="2xx"}"#, 1.0),
        (r#"gateway_requests_total{route="protected",status="2xx"}"#, 2.0),
        (r#"gateway_requests_total{route="protected",status="4xx"}"#, 4.0),
        (r#"gateway_request_duration_seconds_count{route="protected"}"#, 6.0),
        (r#"gateway_request_duration_seconds_count{route="public"}"#, 1.0),
        (r#"gateway_fallback_calls_total{outcome="valid"}"#, 0.0),
        ("gateway_fallback_coalesced_waiters_total", 0.0),
        ("gateway_rate_limited_total", 0.0),
        (r#"gateway_scope_denials_total{scope="tasks:write"}"#, 0.0),
    ];
    for (series, want) in expected {
        assert_eq!(delta(series), want, "{series}\n{text}");
    }
    testkit::exposition::promtool_check(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sample(&after, "gateway_keyring_loaded"), 1.0);
    assert!(after.contains_key("gateway_keyring_age_seconds"));
    assert!(sample(&after, r#"gateway_keyring_refreshes_total{outcome="success"}"#) >= 1.0);
    // Low cardinality: only these label names exist (no user, path, kid or token labels;
    // `scope` is tasks:read or tasks:write).
    for series in after.keys().filter(|k| k.starts_with("gateway_")) {
        let Some(labels) = series.split_once('{').map(|(_, l)| l.trim_end_matches('}')) else { continue };
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap();
            assert!(
                ["result", "reason", "outcome", "class", "route", "status", "le", "scope"].contains(&name),
                "{series}"
            );
        }
    }
}
