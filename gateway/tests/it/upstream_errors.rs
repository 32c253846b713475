//! task-svc failures become JSON 504 (too slow) and 502 (refused), never pingora's empty pages.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::harness::*;

#[tokio::test]
async fn slow_upstream_is_504_and_refused_upstream_is_502() {
    let mut stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.upstream.read_timeout_ms = 1000).await;
    let (token, _) = login(&stack.auth, "upstream").await;
    let task = create_task(&stack.gateway, &token, "locked").await;
    let id = task["id"].as_i64().unwrap();
    let c = client();

    let mut tx = stack.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await.unwrap();
    let t = Instant::now();
    let r = c
        .put(stack.gateway.url_for(&format!("/tasks/{id}")))
        .bearer_auth(&token)
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(r.headers().get("x-request-id").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Gateway Timeout");
    assert_eq!(body["reason"], "upstream_timeout", "{body}");
    tx.rollback().await.unwrap();

    stack.task.process.kill();
    let r = c.get(stack.gateway.url_for("/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Bad Gateway");
    assert_eq!(body["reason"], "upstream_unavailable", "{body}");
    assert!(body["message"].is_string());
}
