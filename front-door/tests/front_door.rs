//! The front door against stand-in targets: routing, round-robin, health-check rotation,
//! header handling, and the JSON errors (404, 502, 503).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use front_door::{FrontDoor, FrontDoorConfig, HealthCheck, PoolKind};
use serde_json::{Value, json};

/// A target that answers its health check while `healthy`, echoes what it received, and
/// drops the connection without answering for `/tasks/crash`.
async fn target(name: &'static str, healthy: Arc<AtomicBool>) -> SocketAddr {
    let app = Router::new().fallback(move |req: Request| {
        let healthy = healthy.clone();
        async move {
            let path = req.uri().path().to_owned();
            if path.ends_with("/health") {
                return if healthy.load(Ordering::Relaxed) {
                    StatusCode::OK.into_response()
                } else {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                };
            }
            // Early answers: the target does not read the body at all (the gateway's 401 for a
            // missing token, task-svc's 413 over its body limit).
            if path == "/tasks/early-413" {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    axum::Json(json!({"error": "Payload Too Large", "message": "over the limit"})),
                )
                    .into_response();
            }
            if path == "/tasks/early-401" {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Unauthorized", "message": "no token"})))
                    .into_response();
            }
            if path == "/tasks/crash" {
                // Exiting the handler by aborting the connection: the client sees a reset.
                panic!("connection dropped mid-request");
            }
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
                .collect();
            let uri = req.uri().to_string();
            let Ok(body) = axum::body::to_bytes(req.into_body(), 1 << 20).await else {
                return StatusCode::IM_A_TEAPOT.into_response();
            };
            let reply = json!({"target": name, "uri": uri, "headers": headers, "body_len": body.len()});
            let mut resp: Response = axum::Json(reply).into_response();
            resp.headers_mut().insert("connection", "keep-alive, x-internal".parse().unwrap());
            resp.headers_mut().insert("x-internal", "secret".parse().unwrap());
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn config() -> FrontDoorConfig {
    FrontDoorConfig {
        health: HealthCheck {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        upstream_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(1),
    }
}

async fn wait_for(door: &FrontDoor, name: &str, healthy: bool) {
    for _ in 0..200 {
        if door.backends().iter().any(|b| b.name == name && b.healthy == healthy) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never became healthy={healthy}");
}

async fn get(url: &str) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let json: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(ct.as_deref(), Some("application/json"), "error bodies are JSON");
        assert_eq!(json["error"], status.canonical_reason().unwrap(), "{json}");
        assert!(json["message"].is_string(), "{json}");
    }
    (status, json)
}

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
    assert_eq!(get(&format!("{base}/auth/health")).await.0, StatusCode::OK, "the auth pool is unaffected");
    t1.store(true, Ordering::Relaxed);
    wait_for(&door, "task-1", true).await;

    // A target that drops the connection mid-request: 502, JSON.
    let (status, j) = get(&format!("{base}/tasks/crash")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{j}");

    let counts: Vec<(String, u64)> = door.backends().into_iter().map(|b| (b.name, b.requests)).collect();
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    door.stop_public().await;
    assert!(reqwest::get(format!("{base}/tasks")).await.is_err(), "stopped listener refuses");
    door.stop_internal().await;
}

/// A front door over one auth and one task target (both healthy), ready for requests.
async fn door() -> (FrontDoor, String) {
    let targets = vec![
        ("auth-1".to_owned(), target("auth-1", Arc::new(AtomicBool::new(true))).await, PoolKind::Auth),
        ("task-1".to_owned(), target("task-1", Arc::new(AtomicBool::new(true))).await, PoolKind::Tasks),
    ];
    let public = front_door::bind(0, "front door", "--port").await.unwrap();
    let internal = front_door::bind(0, "auth discovery", "--base-port").await.unwrap();
    let door = FrontDoor::start(public, internal, targets, config()).unwrap();
    wait_for(&door, "auth-1", true).await;
    wait_for(&door, "task-1", true).await;
    let base = format!("http://{}", door.public_addr().unwrap());
    (door, base)
}

/// Sends raw bytes (for requests no HTTP client library would send) and reads the answer until
/// the connection closes: status, head, and the body as JSON.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let text = raw_text(addr, request).await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Sends raw bytes and returns everything the front door answered until it closed.
async fn raw_text(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the front door kept the connection open after answering");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_json_error(status: u16, head: &str, body: &Value, want: StatusCode) {
    assert_eq!(status, want.as_u16(), "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    assert_eq!(body["error"], want.canonical_reason().unwrap(), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

fn task_requests(door: &FrontDoor) -> u64 {
    door.backends().into_iter().find(|b| b.name == "task-1").unwrap().requests
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
async fn malformed_framing_from_the_client_is_a_400_not_a_502() {
    let (door, _) = door().await;
    let addr = door.public_addr().unwrap();
    // A chunk size that is not hex, a chunk longer than announced, and a body cut short.
    let bodies: [&[u8]; 2] = [b"zz\r\nhello\r\n0\r\n\r\n", b"3\r\nhello\r\n0\r\n\r\n"];
    for body in bodies {
        let request =
            [b"POST /tasks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(), body].concat();
        let (status, head, json) = raw(addr, &request).await;
        assert_json_error(status, &head, &json, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_alb_rejects_get_a_json_error_and_never_reach_a_target() {
    let (door, base) = door().await;
    let addr = door.public_addr().unwrap();
    let before = task_requests(&door);
    let cases: [(&[u8], StatusCode); 9] = [
        (b"GET /tasks HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", StatusCode::BAD_REQUEST),
        // Request targets that are not a path (RFC 9112 section 3.2).
        (b"GET auth/health HTTP/1.1\r\nHost: a\r\n\r\n", StatusCode::BAD_REQUEST),
        (b"GET ?x HTTP/1.1\r\nHost: a\r\n\r\n", StatusCode::BAD_REQUEST),
        (b"GET /tasks HTTP/1.1\r\n\r\n", StatusCode::BAD_REQUEST),
        (
            b"POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            StatusCode::BAD_REQUEST,
        ),
        (
            b"POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            StatusCode::BAD_REQUEST,
        ),
        (b"GET /tasks HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", StatusCode::BAD_REQUEST),
        (b"GET /tasks HTTP/1.1\r\nHost: a\r\nX\x01Y: x\r\n\r\n", StatusCode::BAD_REQUEST),
        (
            b"POST /tasks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            StatusCode::NOT_IMPLEMENTED,
        ),
    ];
    for (request, want) in cases {
        let (status, head, json) = raw(addr, request).await;
        assert_json_error(status, &head, &json, want);
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    }
    // A good request before a bad one on the same connection is answered normally first.
    let (status, head, _) =
        raw(addr, b"GET /tasks/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /tasks/2 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 200, "{head}");
    let rest =
        raw_text(addr, b"GET /tasks/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /tasks/2 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
            .await;
    let second = rest.find("HTTP/1.1 400 Bad Request").expect("the second request is answered 400");
    assert!(rest[..second].contains(r#""uri":"/tasks/1""#), "{rest}");
    assert!(rest[second..].contains(r#""error":"Bad Request""#), "{rest}");
    assert_eq!(task_requests(&door), before + 2, "only the good requests reached the target");
    // TRACE is not supported by the ALB; a 405 names what is (RFC 9110 section 15.5.6).
    let r = reqwest::Client::new().request(reqwest::Method::TRACE, format!("{base}/tasks")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_some_and(|v| v.to_str().unwrap().contains("GET")));
    // CONNECT is not tunnelled: a JSON 405 from the front door, never the target's answer.
    let before = task_requests(&door);
    for target in ["/tasks HTTP/1.1", "127.0.0.1:1 HTTP/1.1"] {
        let request = format!("CONNECT {target}\r\nHost: a\r\n\r\n");
        let (status, head, json) = raw(addr, request.as_bytes()).await;
        assert_json_error(status, &head, &json, StatusCode::METHOD_NOT_ALLOWED);
        assert!(head.to_ascii_lowercase().contains("allow: "), "{head}");
    }
    assert_eq!(task_requests(&door), before, "CONNECT never reaches the target");
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
    }
    // Only the exact path: the rest of /auth is routed.
    assert!(get(&format!("{base}/auth/validate/x")).await.1["target"].is_string());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_albs_limits_or_malformed_get_a_json_400() {
    let (door, _) = door().await;
    let addr = door.public_addr().unwrap();
    let before = task_requests(&door);
    let fields =
        |n: usize, size: usize| -> String { (0..n).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(size))).collect() };
    let cases: Vec<(&str, String)> = vec![
        ("101 header fields", format!("GET /tasks HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(100, 1))),
        ("a 17 KiB header line", format!("GET /tasks HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(1, 17 * 1024))),
        ("a 17 KiB request line", format!("GET /tasks?q={} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(17 * 1024))),
        ("a 70 KiB head", format!("GET /tasks HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(5, 14 * 1024))),
        ("no request line", "HELLO\r\n\r\n".into()),
        ("a request line without a version", "GET /tasks\r\nHost: a\r\n\r\n".into()),
        ("a header line without a colon", "GET /tasks HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n".into()),
    ];
    for (name, request) in cases {
        let (status, head, json) = raw(addr, request.as_bytes()).await;
        assert_json_error(status, &head, &json, StatusCode::BAD_REQUEST);
        assert!(!json["message"].as_str().unwrap().is_empty(), "{name}: {json}");
    }
    assert_eq!(task_requests(&door), before, "nothing reached the target");
}
