//! The front door spreads requests round-robin over both instances of each service, as the
//! ALB does over a target group: visible in the front door's per-target counters and in each
//! instance's own metrics endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::*;
use reqwest::{Method, StatusCode};
use testkit::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_both_instances_of_each_service() {
    let db = TestDatabase::new().await;
    let stack = start_on(&db.url).await;
    let alb = stack.url();
    let c = client();

    register(&Http::new(&c, &alb), "spread").await;
    let mut token = String::new();
    for _ in 0..6 {
        token = login(&Http::new(&c, &alb), "spread").await;
    }
    for _ in 0..10 {
        let r = call(&c, Method::GET, &format!("{alb}/tasks"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }

    // The front door's counters (health checks are not counted, only proxied requests).
    for name in ["auth-1", "auth-2"] {
        let t = target(&stack, name);
        assert!(t.requests >= 3, "{name} got {} of the 7 auth requests", t.requests);
    }
    for name in ["task-1", "task-2"] {
        let t = target(&stack, name);
        assert_eq!(t.requests, 5, "{name}: round-robin over 10 requests");
    }

    // Each instance's own metrics agree: both auth-svc instances answered logins, both
    // task-svc instances (behind their own gateways) answered listings.
    for i in 0..2 {
        let (_, metrics) = stack.auth_addrs(i);
        let logins =
            counter(&c, metrics, r#"http_requests_total{method="POST",route="/auth/login",status="2xx"}"#).await;
        assert!(logins >= 1, "auth-{} answered no login", i + 1);

        let (_, metrics) = stack.task_svc_addrs(i);
        let lists = counter(&c, metrics, r#"http_requests_total{method="GET",route="/tasks",status="2xx"}"#).await;
        assert_eq!(lists, 5, "task-svc-{} listings", i + 1);
    }

    stack.shutdown().await.expect("clean shutdown");
}
