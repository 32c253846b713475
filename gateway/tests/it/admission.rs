//! After authentication: the token's scope decides the methods it may use (403
//! `insufficient_scope`), and each subject (API key, else user) has a request rate (429 with
//! `Retry-After` and the RateLimit headers). Neither answer reaches task-svc.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use platform::Secret;
use platform::keyring::{Claims, Keyring};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use testkit::accounts::unix_now;
use testkit::harness::*;

/// A token signed with `OLD_SECRET` for `user_id` whose claims `edit` changes.
fn token(user_id: i64, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = Claims::new(user_id, &format!("user{user_id}"), "minted@example.com", unix_now(), 600);
    edit(&mut claims);
    Keyring::new(&Secret::new(OLD_SECRET), None).unwrap().issue(&claims).unwrap()
}

async fn send(gateway: &RunningService, method: Method, path: &str, token: &str) -> Response {
    let mut rb = client().request(method.clone(), gateway.url_for(path)).bearer_auth(token);
    if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        rb = rb.json(&json!({"title": "changed"}));
    }
    rb.send().await.unwrap()
}

async fn assert_error(r: Response, status: u16, reason: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("x-request-id").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn a_read_only_token_reads_and_every_write_is_403_insufficient_scope() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (login_token, user_id) = login(&stack.auth, "reader").await;
    let task = create_task(&stack.gateway, &login_token, "kept").await;
    let path = format!("/tasks/{}", task["id"]);
    let read_only = token(user_id, |c| c.scope = Some("tasks:read".into()));

    for p in ["/tasks", path.as_str()] {
        assert_eq!(send(&stack.gateway, Method::GET, p, &read_only).await.status(), 200, "GET {p}");
    }
    for (method, p) in [(Method::POST, "/tasks"), (Method::PUT, &path), (Method::PATCH, &path), (Method::DELETE, &path)]
    {
        let r = send(&stack.gateway, method.clone(), p, &read_only).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer error="insufficient_scope", scope="tasks:write""#,
            "{method} {p}"
        );
        let body = assert_error(r, 403, "insufficient_scope").await;
        assert_eq!(body["error"], "Forbidden");
    }
    // Nothing reached task-svc: the task is unchanged and the list still holds only it.
    let r = send(&stack.gateway, Method::GET, &path, &login_token).await;
    assert_eq!(r.json::<Value>().await.unwrap()["task"]["title"], "kept");
    let r = send(&stack.gateway, Method::GET, "/tasks", &login_token).await;
    assert_eq!(r.json::<Value>().await.unwrap()["tasks"].as_array().unwrap().len(), 1);

    // The access lines of the refusals name the user (what an operator greps for).
    let log = log_path("gateway", stack.gateway.addr.port());
    // compact (`user_id=7 `) or JSON (`"user_id":7,`) lines.
    let (compact, json) = (format!(" user_id={user_id} "), format!("\"user_id\":{user_id},"));
    testkit::wait::until("a 403 access line naming its user", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let named =
            text.lines().any(|l| l.contains("insufficient_scope") && (l.contains(&compact) || l.contains(&json)));
        async move { named }
    })
    .await;

    // A write-only token cannot read.
    let write_only = token(user_id, |c| c.scope = Some("tasks:write".into()));
    let r = send(&stack.gateway, Method::GET, "/tasks", &write_only).await;
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer error="insufficient_scope", scope="tasks:read""#);
    assert_error(r, 403, "insufficient_scope").await;

    // A token without a scope claim (issued before scopes existed) may do everything.
    let legacy = token(user_id, |c| c.scope = None);
    assert_eq!(send(&stack.gateway, Method::POST, "/tasks", &legacy).await.status(), 201);
    assert_eq!(send(&stack.gateway, Method::DELETE, &path, &legacy).await.status(), 204);

    let m = scrape(&stack.gateway).await;
    assert_eq!(testkit::exposition::sample(&m, r#"gateway_scope_denials_total{scope="tasks:write"}"#), 4.0);
    assert_eq!(testkit::exposition::sample(&m, r#"gateway_scope_denials_total{scope="tasks:read"}"#), 1.0);
}

#[tokio::test]
async fn a_flooding_user_gets_429_with_the_ratelimit_headers_while_another_is_served() {
    // One request a second, a burst of 3, one gateway (no peers_dns_name): N = 1.
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| {
        f.rate_limit.fleet_rate_per_sec = 1;
        f.rate_limit.burst = 3;
    })
    .await;
    let m = scrape(&stack.gateway).await;
    assert_eq!(testkit::exposition::sample(&m, "gateway_rate_limited_total"), 0.0, "present at 0 from the start");
    assert_eq!(testkit::exposition::sample(&m, "gateway_rate_limit_peers"), 1.0);
    let (flooder, _) = login(&stack.auth, "flooder").await;
    let (other, _) = login(&stack.auth, "bystander").await;

    // Bounded: the burst (3) plus what one request a second adds while these run.
    let mut limited = None;
    for i in 0..20 {
        let r = send(&stack.gateway, Method::GET, "/tasks", &flooder).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200, "request {i}");
        // Allowed responses carry no RateLimit fields (docs/gateway.md says why).
        assert!(r.headers().get("ratelimit-policy").is_none() && r.headers().get("ratelimit").is_none());
    }
    let r = limited.expect("the flood was limited within 20 requests");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1, "whole seconds, rounded up: one request a second");
    assert_eq!(r.headers()["ratelimit-policy"], r#""default";q=3;w=3"#);
    assert_eq!(r.headers()["ratelimit"], r#""default";r=0;t=1"#);
    let body = assert_error(r, 429, "rate_limited").await;
    assert_eq!(body["error"], "Too Many Requests");

    // Another user is served meanwhile; the flooder again once Retry-After has passed.
    assert_eq!(send(&stack.gateway, Method::GET, "/tasks", &other).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(send(&stack.gateway, Method::GET, "/tasks", &flooder).await.status(), 200);
    let m = scrape(&stack.gateway).await;
    assert!(testkit::exposition::sample(&m, "gateway_rate_limited_total") >= 1.0);

    // The same limits with enabled = false: nothing is limited (the bench's gateway-nolimits).
    let unlimited = start_gateway(
        sidecar(|f| {
            f.rate_limit.enabled = false;
            f.rate_limit.fleet_rate_per_sec = 1;
            f.rate_limit.burst = 1;
        }),
        stack.task.addr,
        &stack.auth.url(),
        KeyringSource::secret(OLD_SECRET),
        true,
    )
    .await;
    for i in 0..10 {
        assert_eq!(send(&unlimited, Method::GET, "/tasks", &flooder).await.status(), 200, "request {i}");
    }
    let m = scrape(&unlimited).await;
    assert_eq!(testkit::exposition::sample(&m, "gateway_rate_limited_total"), 0.0);
}
