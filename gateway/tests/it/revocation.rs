//! Logout and revocation with the real auth-svc, task-svc and gateway: the gateway pulls the
//! revocation list in the background and refuses revoked tokens within its poll interval,
//! cached ones included; an unreachable auth-svc leaves the last list in force; an old list can
//! be made to fail closed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::Http;
use testkit::accounts;
use testkit::harness::*;
use testkit::launch::KeyringSource;
use testkit::wait;

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_auth(c: &reqwest::Client, auth: &RunningService, path: &str, token: &str) -> u16 {
    c.post(auth.url_for(path)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// Polls until `token` is refused as revoked; returns how long that took.
async fn time_to_refusal(c: &reqwest::Client, url: &str, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get(c, url, token).await;
        if status == 401 {
            assert_eq!(body["reason"], "revoked", "{body}");
            return start.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn logout_is_enforced_within_the_poll_interval_even_for_cached_tokens() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.revocation.poll_interval_secs = 1).await;
    let (token, _) = login(&stack.auth, "leaver").await;
    let c = client();
    let url = stack.gateway.url_for("/tasks");
    assert_eq!(get(&c, &url, &token).await.0, 200);
    assert_eq!(get(&c, &url, &token).await.0, 200, "a cache hit now");

    assert_eq!(post_auth(&c, &stack.auth, "/auth/logout", &token).await, 204);
    let took = time_to_refusal(&c, &url, &token, Duration::from_secs(2)).await;
    eprintln!("logout to refusal at the gateway: {took:?} (poll interval 1 s)");
    let m = samples(&metrics_text(&stack.gateway).await);
    assert_eq!(sample(&m, "gateway_revocations_live"), 1.0);
    assert!(sample(&m, r#"gateway_revocation_pulls_total{outcome="success"}"#) >= 1.0);
    assert_eq!(sample(&m, r#"gateway_auth_decisions_total{reason="revoked",result="deny"}"#), 1.0);
}

#[tokio::test]
async fn logout_all_refuses_every_older_token_and_a_new_one_works() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.revocation.poll_interval_secs = 1).await;
    let c = client();
    let auth = Http::new(&c, &stack.auth.url());
    let username = accounts::unique("everywhere");
    let user_id = accounts::register(&auth, &username).await["id"].as_i64().unwrap();
    let first = accounts::login(&auth, &username).await;
    let second = accounts::login(&auth, &username).await;
    let url = stack.gateway.url_for("/tasks");
    assert_eq!(get(&c, &url, &first).await.0, 200);
    assert_eq!(get(&c, &url, &second).await.0, 200);

    assert_eq!(post_auth(&c, &stack.auth, "/auth/logout-all", &second).await, 204);
    time_to_refusal(&c, &url, &first, Duration::from_secs(2)).await;
    time_to_refusal(&c, &url, &second, Duration::from_secs(2)).await;
    let third = accounts::login(&auth, &username).await;
    let (status, body) = get(&c, &url, &third).await;
    assert_eq!(status, 200, "a token issued after logout-all works: {body}");
    let created = create_task(&stack.gateway, &third, "after logout-all").await;
    assert_eq!(created["user_id"].as_i64(), Some(user_id));
}

#[tokio::test]
async fn pulled_revocations_hold_while_auth_svc_is_down_and_an_old_list_can_fail_closed() {
    let mut stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.revocation.poll_interval_secs = 1).await;
    let strict = start_gateway(
        sidecar(|f| {
            f.revocation.poll_interval_secs = 1;
            f.revocation.max_age_secs = 2;
        }),
        stack.task.addr,
        &format!("http://{}", stack.auth.addr),
        KeyringSource::secret(OLD_SECRET),
        true,
    )
    .await;
    let (revoked, _) = login(&stack.auth, "gone").await;
    let (kept, _) = login(&stack.auth, "stays").await;
    let c = client();
    assert_eq!(post_auth(&c, &stack.auth, "/auth/logout", &revoked).await, 204);
    time_to_refusal(&c, &stack.gateway.url_for("/tasks"), &revoked, Duration::from_secs(2)).await;
    time_to_refusal(&c, &strict.url_for("/tasks"), &revoked, Duration::from_secs(2)).await;

    stack.auth.process.kill();
    // Both gateways keep the list they pulled once a pull has failed: the revoked token stays
    // refused, others work. The strict one first, before its list is too old.
    for gw in [&strict, &stack.gateway] {
        wait::until("a failed revocation pull", Duration::from_secs(10), || async {
            sample(&scrape(gw).await, r#"gateway_revocation_pulls_total{outcome="failure"}"#) >= 1.0
        })
        .await;
        assert_eq!(get(&c, &gw.url_for("/tasks"), &revoked).await.0, 401);
    }
    assert_eq!(get(&c, &stack.gateway.url_for("/tasks"), &kept).await.0, 200);
    wait::until("the relaxed gateway's list aged past a second", Duration::from_secs(10), || async {
        sample(&scrape(&stack.gateway).await, "gateway_revocation_list_age_seconds") >= 1.0
    })
    .await;

    // The strict gateway (max_age_secs = 2) stops trusting its list once it is too old: 503.
    let start = Instant::now();
    loop {
        let r = c.get(strict.url_for("/tasks")).bearer_auth(&kept).send().await.unwrap();
        if r.status() == 503 {
            assert!(r.headers().get("retry-after").is_some());
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(start.elapsed() < Duration::from_secs(5), "the old list was never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The relaxed one (default: no maximum age) keeps serving.
    assert_eq!(get(&c, &stack.gateway.url_for("/tasks"), &kept).await.0, 200);
}

/// A gateway that has never pulled the list cannot tell a revoked token from a good one: it
/// refuses to guess (503 `revocation_pending`, not 401: the token may be fine), and is not ready.
#[tokio::test]
async fn a_gateway_without_a_revocation_list_fails_closed_and_is_not_ready() {
    let db = testkit::TestDatabase::new().await;
    let task = start_task(&db.url).await;
    let dead_auth = format!("http://127.0.0.1:{}", testkit::free_port().unwrap());
    let gateway = start_gateway(
        sidecar(|f| f.revocation.poll_interval_secs = 1),
        task.addr,
        &dead_auth,
        KeyringSource::secret(OLD_SECRET),
        false,
    )
    .await;
    let c = client();
    let token = mint(OLD_SECRET, 1, 600);
    let ready = gateway.metrics_url("/ready").unwrap();
    // Until the keyring is loaded the reason is the keyring; a fixed one loads at once.
    let start = Instant::now();
    let body = loop {
        let r = c.get(&ready).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        if body["reason"] == "revocation_pending" {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["error"], "Service Unavailable", "{body}");
    let r = c.get(gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "revocation_pending", "{body}");
    // Public routes do not need the list.
    assert_eq!(c.get(gateway.url_for("/tasks/health")).send().await.unwrap().status(), 200);
    let m = samples(&metrics_text(&gateway).await);
    assert!(sample(&m, r#"gateway_revocation_pulls_total{outcome="failure"}"#) >= 1.0);
    assert_eq!(sample(&m, r#"gateway_auth_decisions_total{reason="revocation_pending",result="unavailable"}"#), 1.0);
}

#[tokio::test]
async fn revocations_survive_an_auth_svc_restart() {
    let mut stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.revocation.poll_interval_secs = 1).await;
    let (token, _) = login(&stack.auth, "restart").await;
    let c = client();
    assert_eq!(post_auth(&c, &stack.auth, "/auth/logout", &token).await, 204);
    stack.auth.process.kill();
    // A new auth-svc on the same database, and a gateway that has never seen the list.
    let auth = start_auth(&stack.db.url, OLD_SECRET, None).await;
    let gateway = start_gateway(
        sidecar(|f| f.revocation.poll_interval_secs = 1),
        stack.task.addr,
        &format!("http://{}", auth.addr),
        KeyringSource::secret(OLD_SECRET),
        true,
    )
    .await;
    time_to_refusal(&c, &gateway.url_for("/tasks"), &token, Duration::from_secs(3)).await;
    let r = c.post(auth.url_for("/auth/validate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The first pull is logged once, answering the start's "not pulled yet" lines.
    let log = log_once(&gateway, "the first pull's line", |t| t.contains("revocation list pulled")).await;
    assert_eq!(log.matches("revocation list pulled").count(), 1, "{log}");
}
