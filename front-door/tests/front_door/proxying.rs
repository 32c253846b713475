//! Proxying through the front door: routing, round-robin, health-check rotation, the headers
//! the ALB adds and removes, early answers of a target, pipelining, and the front door's own
//! JSON errors (404, 502, 503).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use front_door::{FrontDoor, FrontDoorConfig, PoolKind};
use serde_json::Value;

use crate::kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_balances_and_rotates_on_health() {
    let up = |b: bool| Arc::new(AtomicBool::new(b));
    let (a1, a2, t1, t2) = (up(true), up(true), up(true), up(true));
    let targets = vec![
        ("auth-1".to_owned(), target("auth-1", a1.clone()).await, PoolKind::Auth),
        ("auth-2".to_owned(), target("auth-2", a2.clone()).await, PoolKind::Auth),
        ("task-1".to_owned(), target("task-1", t1.clone()).await, PoolKind::Tasks),
        ("task-2".to_owned(), target("task-2", t2.clone()).await, PoolKind::Tasks),
    ];
    let public = front_door::bind(0, "front door", "--port").await.unwrap();
    let internal = front_door::bind(0, "auth discovery", "--base-port").await.unwrap();
    let mut door = FrontDoor::start(public, internal, targets, config()).unwrap();
    let base = format!("http://{}", door.public_addr().unwrap());
    let discovery = format!("http://{}", door.internal_addr().unwrap());

    // Targets start out of rotation, as new ALB targets do.
    let (status, _) = get(&format!("{base}/tasks")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    for name in ["auth-1", "auth-2", "task-1", "task-2"] {
        wait_for(&door, name, true).await;
    }

    // Path routing, both forms of each prefix; the query string is kept.
    let (_, j) = get(&format!("{base}/auth/login?x=1")).await;
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
    assert_eq!(j["uri"], "/auth/login?x=1");
    let (_, j) = get(&format!("{base}/auth")).await;
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
    let (_, j) = get(&format!("{base}/tasks")).await;
    assert!(j["target"].as_str().unwrap().starts_with("task-"), "{j}");
    for path in ["/", "/taskss", "/metrics", "/TASKS", "/auth-x"] {
        assert_eq!(get(&format!("{base}{path}")).await.0, StatusCode::NOT_FOUND, "{path}");
    }

    // Round-robin over the healthy targets.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(get(&format!("{base}/tasks/1")).await.1["target"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.iter().filter(|t| *t == "task-1").count(), 2, "{seen:?}");

    // Headers: X-Forwarded-For appended, hop-by-hop removed both ways.
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/tasks"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("authorization", "Bearer t")
        .body(vec![b'a'; 100_000])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-internal").is_none(), "hop-by-hop named by Connection is removed");
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(j["headers"]["x-forwarded-proto"], "http");
    assert_eq!(j["headers"]["x-forwarded-port"], door.public_addr().unwrap().port().to_string());
    assert_eq!(j["headers"]["authorization"], "Bearer t");
    assert!(j["headers"].get("x-drop-me").is_none(), "{j}");
    assert_eq!(j["body_len"], 100_000);

    // The Cloud Map stand-in: any path to the auth pool, no X-Forwarded-*.
    let (_, j) = get(&format!("{discovery}/auth/validate")).await;
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
    assert!(j["headers"].get("x-forwarded-for").is_none(), "{j}");
    assert!(j["headers"].get("x-amzn-trace-id").is_none(), "{j}");

    // A failing target leaves the rotation; all of them failing is a 503; recovery returns.
    t1.store(false, Ordering::Relaxed);
    wait_for(&door, "task-1", false).await;
    for _ in 0..4 {
        assert_eq!(get(&format!("{base}/tasks")).await.1["target"], "task-2");
    }
    t2.store(false, Ordering::Relaxed);
    wait_for(&door, "task-2", false).await;
    let (status, j) = get(&format!("{base}/tasks")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(j["message"].as_str().unwrap().contains("task-svc"), "{j}");
    assert_eq!(j["reason"], "no_healthy_target", "{j}");
    assert_eq!(get(&format!("{base}/auth/health")).await.0, StatusCode::OK, "the auth pool is unaffected");
    t1.store(true, Ordering::Relaxed);
    wait_for(&door, "task-1", true).await;

    // A target that drops the connection mid-request: 502, JSON.
    let (status, j) = get(&format!("{base}/tasks/crash")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{j}");
    assert_eq!(j["reason"], "upstream_unavailable", "{j}");

    let counts: Vec<(String, u64)> = door.backends().into_iter().map(|b| (b.name, b.requests)).collect();
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    door.stop_public().await;
    assert!(reqwest::get(format!("{base}/tasks")).await.is_err(), "stopped listener refuses");
    door.stop_internal().await;
}

/// After the public listener stops, the task pool is no longer probed: its targets (gateways
/// draining on shutdown) stay as they were, with no "failed health checks" line, while the
/// auth pool, which the internal listener still serves, is still checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_pool_is_not_probed_once_the_public_listener_has_stopped() {
    let (a1, t1) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
    let targets = vec![
        ("auth-1".to_owned(), target("auth-1", a1.clone()).await, PoolKind::Auth),
        ("task-1".to_owned(), target("task-1", t1.clone()).await, PoolKind::Tasks),
    ];
    let public = front_door::bind(0, "front door", "--port").await.unwrap();
    let internal = front_door::bind(0, "auth discovery", "--base-port").await.unwrap();
    let mut door = FrontDoor::start(public, internal, targets, config()).unwrap();
    wait_for(&door, "auth-1", true).await;
    wait_for(&door, "task-1", true).await;

    door.stop_public().await;
    // The task target fails first: by the time the auth target is out of rotation, the task
    // target would have been too, had it still been probed.
    t1.store(false, Ordering::Relaxed);
    a1.store(false, Ordering::Relaxed);
    wait_for(&door, "auth-1", false).await;
    // Still in rotation for four more intervals: probed, it would have left with auth-1 or in
    // the round after.
    for _ in 0..20 {
        let task = door.backends().into_iter().find(|b| b.name == "task-1").unwrap();
        assert!(task.healthy, "the task pool was probed after the public listener stopped");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    door.stop_internal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_of_the_target_reaches_the_client() {
    let (_door, base) = door().await;
    let c = reqwest::Client::new();
    for (path, status) in
        [("/tasks/early-413", StatusCode::PAYLOAD_TOO_LARGE), ("/tasks/early-401", StatusCode::UNAUTHORIZED)]
    {
        for _ in 0..3 {
            let r = c.post(format!("{base}{path}")).body(vec![b'x'; 10 << 20]).send().await.unwrap();
            assert_eq!(r.status(), status, "{path}: the target's answer, not a 502");
            let j: Value = r.json().await.unwrap();
            assert_eq!(j["error"], status.canonical_reason().unwrap(), "{j}");
        }
    }
    // The connections the early answers left behind are not reused for the next request.
    for _ in 0..4 {
        assert_eq!(get(&format!("{base}/tasks/1")).await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alb_headers_are_added_and_invalid_names_dropped() {
    let (door, base) = door().await;
    let port = door.public_addr().unwrap().port();
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{base}/tasks/1"))
        .header("x_user_id", "7")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let j: Value = r.json().await.unwrap();
    let h = &j["headers"];
    assert!(h.get("x_user_id").is_none(), "a name with an underscore is dropped: {h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], port.to_string());
    let trace = h["x-amzn-trace-id"].as_str().unwrap();
    let fields: Vec<&str> = trace.strip_prefix("Root=1-").unwrap().split('-').collect();
    assert_eq!(fields.len(), 2, "{trace}");
    assert_eq!(fields[0].len(), 8, "{trace}");
    assert_eq!(fields[1].len(), 24, "{trace}");
    assert!(fields.iter().all(|f| f.bytes().all(|b| b.is_ascii_hexdigit())), "{trace}");
    let epoch = u64::from_str_radix(fields[0], 16).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(epoch) < 60, "{trace}");

    // A client's own trace id is kept as the Root, with the load balancer's Self added.
    let r = c
        .get(format!("{base}/tasks/1"))
        .header("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")
        .send()
        .await
        .unwrap();
    let j: Value = r.json().await.unwrap();
    let trace = j["headers"]["x-amzn-trace-id"].as_str().unwrap();
    assert!(trace.starts_with("Self=1-") && trace.ends_with(";Root=1-5759e988-bd862e3fe1be46a994272793"), "{trace}");
}

/// The `message` of the ALB listener's fixed 404s in the stack's template: every one of them.
fn alb_no_route_message() -> String {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ecs/cloudformation/task-management.yaml"))
            .expect("the stack's template");
    let messages: std::collections::BTreeSet<String> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MessageBody: "))
        .map(|body| {
            let body: Value = serde_json::from_str(body.trim_matches('\'')).expect("a JSON MessageBody");
            body["message"].as_str().expect("a message").to_owned()
        })
        .collect();
    assert_eq!(messages.len(), 1, "the template's fixed responses disagree: {messages:?}");
    messages.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_validate_is_internal() {
    let (door, base) = door().await;
    let c = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE] {
        let r = c.request(method.clone(), format!("{base}/auth/validate")).bearer_auth("t").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
        let j: Value = r.json().await.unwrap();
        assert_eq!(j["error"], "Not Found", "{j}");
        assert!(j.get("target").is_none(), "answered by the front door itself: {j}");
        // The ALB's fixed response, word for word (the stack's template).
        assert_eq!(j["message"], alb_no_route_message(), "{j}");
    }
    // Below it too, as the ALB's rule (`/auth/validate/*`); the rest of /auth is routed.
    let (status, j) = get(&format!("{base}/auth/validate/x")).await;
    assert_eq!((status, j.get("target")), (StatusCode::NOT_FOUND, None), "{j}");
    assert!(get(&format!("{base}/auth/validatex")).await.1["target"].is_string());
    assert!(get(&format!("{base}/auth/login")).await.1["target"].is_string());
    // The Cloud Map stand-in (the gateways' AUTH_SERVICE_URL) forwards it.
    let discovery = format!("http://{}", door.internal_addr().unwrap());
    let (status, j) = get(&format!("{discovery}/auth/validate")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(j["target"], "auth-1");
}

/// The JWKS is public: the front door routes it to auth-svc without a token (the ALB's JWT
/// verification and outside verifiers fetch it there), unchanged, on the public listener and on
/// the Cloud Map stand-in the gateways use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_reaches_auth_svc_publicly() {
    let (door, base) = door().await;
    let (status, j) = get(&format!("{base}/auth/.well-known/jwks.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
    assert_eq!(j["uri"], "/auth/.well-known/jwks.json");
    assert!(j["headers"].get("authorization").is_none());
    let discovery = format!("http://{}", door.internal_addr().unwrap());
    let (status, j) = get(&format!("{discovery}/auth/.well-known/jwks.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_all_answered_in_order() {
    let (door, _) = door().await;
    let addr = door.public_addr().unwrap();
    // Written at once (RFC 9112 section 9.3.2): GETs, a POST with a body, one the front door
    // answers itself (404), and a last one that closes the connection.
    let mut request = String::new();
    for i in 1..=3 {
        request.push_str(&format!("GET /tasks/{i} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    request.push_str("POST /tasks/4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    request.push_str("GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n");
    request.push_str("GET /tasks/6 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let text = raw_text(addr, request.as_bytes()).await;
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    let statuses: Vec<&str> = answers.iter().map(|a| &a[..3]).collect();
    assert_eq!(statuses, ["200", "200", "200", "200", "404", "200"], "{text}");
    for (i, answer) in answers.iter().enumerate().filter(|(_, a)| a.starts_with("200")) {
        assert!(answer.contains(&format!(r#""uri":"/tasks/{}""#, i + 1)), "answer {i} out of order: {text}");
    }
    assert!(answers[3].contains(r#""body_len":5"#), "{text}");
    assert!(answers[4].contains(r#""error":"Not Found""#), "{text}");
}

/// A client may close its sending side once its request is sent and still read the answer
/// (RFC 9112 section 9.6; `nc` does this); the front door forwards it and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let (door, _base) = door().await;
    let addr = door.public_addr().unwrap();
    let before = task_requests(&door);
    let answer =
        raw_text_half_closed(addr, b"GET /tasks/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert_eq!(task_requests(&door), before + 1, "forwarded once");

    // Two requests pipelined, then the FIN: both answered, in order (RFC 9112 section 9.3.2).
    let answer = raw_text_half_closed(
        addr,
        b"GET /tasks/first HTTP/1.1\r\nHost: a\r\n\r\nGET /tasks/second HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answer:?}");
    let (first, second) = (answer.find("/tasks/first"), answer.find("/tasks/second"));
    assert!(first.is_some() && first < second, "in order: {answer:?}");
}

/// A client connection without a whole request head for `client_idle_timeout` is closed, as the
/// ALB closes one after its idle timeout: idle from the start, idle after a request, or
/// sending its head too slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_without_a_request_head_is_closed_after_the_idle_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idle = Duration::from_millis(600);
    let (door, _base) = door_with(FrontDoorConfig { client_idle_timeout: idle, ..config() }).await;
    let addr = door.public_addr().unwrap();

    /// Reads until the front door closes `stream`: how long that took after `from`.
    async fn closed_after(stream: &mut tokio::net::TcpStream, from: Instant) -> Duration {
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink))
            .await
            .expect("closed within 10 s")
            .ok();
        from.elapsed()
    }

    // Idle from the start.
    let start = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut stream, start).await;
    assert!(took >= idle, "closed after {took:?}, before the idle timeout");

    // A head sent in pieces slower than the timeout allows.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    stream.write_all(b"GET /tasks/health HTTP/1.1\r\n").await.unwrap();
    let took = closed_after(&mut stream, start).await;
    assert!(took >= idle, "closed after {took:?}, before the idle timeout");

    // Idle after an answered request: the connection served it and is then closed.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /tasks/health HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let start = Instant::now();
    let took = closed_after(&mut stream, start).await;
    assert!(took + Duration::from_millis(100) >= idle, "closed after {took:?}, before the idle timeout");
}
