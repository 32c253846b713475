//! The auth-svc fallback: one call per new token however many requests carry it, bounded
//! calls under a flood of made-up key ids, and 503 (never fail-open, never 500) when auth-svc
//! is down or slow while locally verifiable tokens keep working.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::harness::*;
use testkit::process::Signal;
use tokio::task::JoinSet;

#[tokio::test]
async fn new_kid_under_200_concurrent_requests_makes_one_auth_call() {
    // auth-svc signs with NEW (and still accepts OLD); the gateway holds only OLD, so auth-svc's
    // tokens carry a key id the gateway does not know but auth-svc can validate.
    let stack = GatewayHarness::start(NEW_SECRET, Some(OLD_SECRET), OLD_SECRET, |_| {}).await;
    let (token, user_id) = login(&stack.auth, "rotated").await;
    let before = auth_validate_calls(&stack.auth).await;

    let c = client();
    let url = stack.gateway.url_for("/tasks");
    let mut set = JoinSet::new();
    for _ in 0..200 {
        let (c, url, token) = (c.clone(), url.clone(), token.clone());
        set.spawn(async move { c.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) });
    }
    let mut ok = 0;
    while let Some(res) = set.join_next().await {
        assert_eq!(res.unwrap().unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 200);
    assert_eq!(auth_validate_calls(&stack.auth).await - before, 1.0, "exactly one auth-svc call");
    let m = samples(&metrics_text(&stack.gateway).await);
    assert_eq!(sample(&m, r#"gateway_fallback_calls_total{outcome="valid"}"#), 1.0);

    // The identity that came back from auth-svc is forwarded.
    let task = create_task(&stack.gateway, &token, "via fallback").await;
    assert_eq!(task["user_id"].as_i64(), Some(user_id));
    assert_eq!(auth_validate_calls(&stack.auth).await - before, 1.0, "later requests are cache hits");
}

#[tokio::test]
async fn a_kid_proven_unknown_is_refused_without_further_calls() {
    let stack = GatewayHarness::start(NEW_SECRET, Some(OLD_SECRET), OLD_SECRET, |_| {}).await;
    let (_, user_id) = login(&stack.auth, "probe").await;
    let c = client();
    let url = stack.gateway.url_for("/tasks");

    // A kid neither the gateway nor auth-svc holds. The gateway's keyring (JWT_SECRET) cannot
    // change, so auth-svc's "unknown key id" is proof: 401 with the reason.
    let bogus = "bogus-secret-0123456789abcdef0123456789abcdef";
    let before = auth_validate_calls(&stack.auth).await;
    let r = c.get(&url).bearer_auth(mint(bogus, user_id, 600)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "unknown_kid");
    assert_eq!(auth_validate_calls(&stack.auth).await - before, 1.0);

    // 200 more tokens with that kid, all different, at once: refused without asking again.
    let before = auth_validate_calls(&stack.auth).await;
    let mut set = JoinSet::new();
    for _ in 0..200 {
        let (c, url, token) = (c.clone(), url.clone(), mint(bogus, user_id, 600));
        set.spawn(async move { c.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(res) = set.join_next().await {
        assert_eq!(res.unwrap().unwrap(), 401);
    }
    assert_eq!(auth_validate_calls(&stack.auth).await - before, 0.0, "no call for a kid proven unknown");

    // 30 different tokens with a kid auth-svc does hold: each is validated (and accepted).
    let before = auth_validate_calls(&stack.auth).await;
    let mut set = JoinSet::new();
    for i in 0..30 {
        let (c, url, token) = (c.clone(), url.clone(), mint(NEW_SECRET, user_id, 600 + i));
        set.spawn(async move { c.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(res) = set.join_next().await {
        assert_eq!(res.unwrap().unwrap(), 200);
    }
    let calls = auth_validate_calls(&stack.auth).await - before;
    assert!((1.0..=30.0).contains(&calls), "{calls}");
}

#[tokio::test]
async fn random_unknown_kids_cause_a_bounded_number_of_auth_calls() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| {
        f.auth.rate_limit_per_sec = 20;
        f.auth.rate_limit_burst = 40;
    })
    .await;
    let before = auth_validate_calls(&stack.auth).await;
    let c = client();
    let url = Arc::new(stack.gateway.url_for("/tasks"));
    let started = Instant::now();
    let mut set = JoinSet::new();
    // 2,000 requests, each with a token signed by a fresh secret: 2,000 distinct key ids.
    for worker in 0..40 {
        let (c, url) = (c.clone(), url.clone());
        set.spawn(async move {
            let mut statuses = Vec::with_capacity(50);
            for i in 0..50 {
                let secret = format!("random-{worker}-{i}-{}", uuid::Uuid::new_v4().simple());
                let token = mint(&secret, 1, 600);
                let r = c.get(url.as_str()).bearer_auth(token).send().await.unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        });
    }
    let mut counts = std::collections::HashMap::<u16, usize>::new();
    while let Some(res) = set.join_next().await {
        for s in res.unwrap() {
            *counts.entry(s).or_default() += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(started.elapsed() < Duration::from_secs(120), "bounded in time");
    assert_eq!(counts.values().sum::<usize>(), 2000);
    assert!(counts.keys().all(|s| *s == 401 || *s == 503), "only 401 or 503: {counts:?}");
    let calls = auth_validate_calls(&stack.auth).await - before;
    let bound = 40.0 + 20.0 * elapsed + 5.0;
    eprintln!("{calls} auth-svc calls in {elapsed:.1}s for 2000 unknown kids; statuses {counts:?}");
    assert!(calls <= bound, "{calls} calls > bound {bound}");
    assert!(calls < 2000.0 / 2.0, "{calls} calls");
    let m = samples(&metrics_text(&stack.gateway).await);
    assert!(sample(&m, r#"gateway_fallback_calls_total{outcome="rate_limited"}"#) > 0.0);
}

#[tokio::test]
async fn auth_svc_down_keeps_known_kids_working_and_answers_503_for_unknown_kids() {
    let mut stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.auth.deadline_ms = 500).await;
    let (_, user_id) = login(&stack.auth, "steady").await;
    let c = client();

    // Slow auth-svc (stopped, so connections hang): the deadline turns it into 503.
    stack.auth.process.signal(Signal::Stop).unwrap();
    let t = Instant::now();
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(mint(NEW_SECRET, user_id, 600)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    stack.auth.process.signal(Signal::Cont).unwrap();

    // Dead auth-svc.
    stack.auth.process.kill();
    let url = stack.gateway.url_for("/tasks");
    // Known kid: fresh tokens (not cached) and repeated ones, all verified locally.
    for i in 0..100 {
        let token = if i % 2 == 0 { mint(OLD_SECRET, user_id, 600) } else { mint(OLD_SECRET, user_id, 601) };
        let r = c.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "known kid request {i}");
    }
    // Unknown kid: cannot decide, so 503 with Retry-After and the JSON body; never 200, never 500.
    for _ in 0..20 {
        let r = c.get(&url).bearer_auth(mint(NEW_SECRET, user_id, 600)).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "Service Unavailable");
    }
    let m = samples(&metrics_text(&stack.gateway).await);
    assert!(sample(&m, r#"gateway_auth_decisions_total{reason="auth_unavailable",result="unavailable"}"#) >= 20.0);
}
