//! Valid tokens are forwarded with the gateway's identity; nothing else reaches task-svc.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use testkit::harness::*;

#[tokio::test]
async fn valid_token_is_forwarded_with_the_verified_identity() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (token, user_id) = login(&stack.auth, "alice").await;
    let c = client();

    // Public route passes through without a token.
    let r = c.get(stack.gateway.url_for("/tasks/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["service"], "task");

    let task = create_task(&stack.gateway, &token, "first").await;
    assert_eq!(task["user_id"].as_i64(), Some(user_id));

    // X-Request-Id: created when absent, kept when sent, returned either way.
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert_eq!(rid.len(), 36, "{rid}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tasks"].as_array().unwrap().len(), 1);
    let r = c
        .get(stack.gateway.url_for(&format!("/tasks/{}", task["id"])))
        .bearer_auth(&token)
        .header("X-Request-Id", "trace-me-123")
        .header("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");

    // The healthcheck subcommand probes readiness on the metrics port.
    let status = std::process::Command::new(bin("gateway"))
        .arg("healthcheck")
        .env("METRICS_ADDR", stack.gateway.metrics.unwrap().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let dead = testkit::free_port().unwrap();
    let status = std::process::Command::new(bin("gateway"))
        .arg("healthcheck")
        .env("METRICS_ADDR", format!("127.0.0.1:{dead}"))
        .status()
        .unwrap();
    assert!(!status.success());
}

async fn assert_401(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.headers().get("x-request-id").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Unauthorized");
    assert!(body["message"].is_string());
    body
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_task_svc() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (victim_token, victim_id) = login(&stack.auth, "victim").await;
    let (token, user_id) = login(&stack.auth, "mallory").await;
    create_task(&stack.gateway, &victim_token, "victim's").await;
    let c = client();
    let spoof = |rb: reqwest::RequestBuilder| {
        rb.header("X-User-Id", victim_id.to_string())
            .header("x-user-id", victim_id.to_string())
            .header("X-USER-NAME", "victim")
            .header("X-Authenticated-User", "victim")
            .header("Connection", "X-User-Secret")
            .header("X-User-Secret", "1")
    };

    // No token: refused, not forwarded, whatever identity headers came along.
    let body = assert_401(spoof(c.get(stack.gateway.url_for("/tasks"))).send().await.unwrap()).await;
    assert_eq!(body["message"], "No authentication token provided");
    // A bad token.
    assert_401(spoof(c.get(stack.gateway.url_for("/tasks"))).bearer_auth("not.a.token").send().await.unwrap()).await;
    // A token signed with someone else's secret (same shape, unknown kid, auth-svc rejects it).
    let foreign = mint("foreign-secret-0123456789abcdef0123456789", victim_id, 600);
    assert_401(spoof(c.get(stack.gateway.url_for("/tasks"))).bearer_auth(&foreign).send().await.unwrap()).await;
    // Two credentials.
    let r = c
        .get(stack.gateway.url_for("/tasks"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Authorization", format!("Bearer {victim_token}"))
        .send()
        .await
        .unwrap();
    assert_401(r).await;

    // A good token: task-svc sees only the gateway's identity (it answers 401 to more than one
    // x-user-id, so a leaked duplicate would show).
    let r = spoof(c.post(stack.gateway.url_for("/tasks")))
        .bearer_auth(&token)
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["task"]["user_id"].as_i64(), Some(user_id));
    let r = spoof(c.get(stack.gateway.url_for("/tasks"))).bearer_auth(&token).send().await.unwrap();
    let list: Value = r.json().await.unwrap();
    let tasks = list["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(tasks.iter().all(|t| t["user_id"].as_i64() == Some(user_id)));

    // Public routes strip them too (task-svc would not care, but nothing is trusted).
    let r = spoof(c.get(stack.gateway.url_for("/tasks/health"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn expired_token_in_the_cache_is_rejected_after_its_exp() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.jwt.leeway_secs = 0).await;
    let (_, user_id) = login(&stack.auth, "shortlived").await;
    let token = mint(OLD_SECRET, user_id, 2);
    let exp = unix_now() + 2;
    let c = client();
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Second request is a cache hit.
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = metrics_text(&stack.gateway).await;
    assert!(sample(&samples(&text), r#"gateway_token_cache_lookups_total{result="hit"}"#) >= 1.0);
    // Past exp the cached identity is not used.
    while unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    let body = assert_401(r).await;
    assert_eq!(body["message"], "Token has expired");
}

#[tokio::test]
async fn the_openapi_document_is_public_and_public_routes_match_exactly() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let c = client();
    // Clients and code generators fetch the document before they hold a token.
    for path in ["/tasks/openapi.json", "/tasks/openapi.json?download=1"] {
        let r = c.get(stack.gateway.url_for(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let doc: Value = r.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        assert!(doc["paths"]["/tasks/{id}"]["delete"].is_object(), "{doc}");
    }
    // Exact match only: anything else near it still needs a token.
    for path in [
        "/tasks/openapi.json/",
        "/tasks/openapi.jsonx",
        "/tasks/OPENAPI.json",
        "/tasks//openapi.json",
        "/tasks/openapi%2Ejson",
        "/tasks/openapi.json;x",
        "/tasks/health/openapi.json",
    ] {
        let r = c.get(stack.gateway.url_for(path)).send().await.unwrap();
        assert_401(r).await;
    }
    let text = metrics_text(&stack.gateway).await;
    assert_eq!(sample(&samples(&text), r#"gateway_auth_decisions_total{reason="public",result="public"}"#), 2.0);
}
