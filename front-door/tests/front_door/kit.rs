//! The kit of the front door's tests: stand-in targets, a front door over them, plain and raw
//! (socket) requests, and the assertions on the front door's JSON errors.

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
pub async fn target(name: &'static str, healthy: Arc<AtomicBool>) -> SocketAddr {
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

pub fn config() -> FrontDoorConfig {
    FrontDoorConfig {
        health: HealthCheck {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        upstream_timeout: Duration::from_secs(5),
        drain: Duration::from_secs(1),
        ..FrontDoorConfig::default()
    }
}

pub async fn wait_for(door: &FrontDoor, name: &str, healthy: bool) {
    for _ in 0..200 {
        if door.backends().iter().any(|b| b.name == name && b.healthy == healthy) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never became healthy={healthy}");
}

pub async fn get(url: &str) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let request_id = r.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    let json: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(ct.as_deref(), Some("application/json"), "error bodies are JSON");
        assert_eq!(json["error"], status.canonical_reason().unwrap(), "{json}");
        assert!(json["message"].is_string(), "{json}");
        assert!(request_id.is_some_and(|id| !id.is_empty()), "the front door's own answers carry X-Request-Id");
    }
    (status, json)
}

/// A front door over one auth and one task target (both healthy), ready for requests.
pub async fn door() -> (FrontDoor, String) {
    door_with(config()).await
}

/// [`door`] with `config` instead of the tests' [`config`].
pub async fn door_with(config: FrontDoorConfig) -> (FrontDoor, String) {
    let targets = vec![
        ("auth-1".to_owned(), target("auth-1", Arc::new(AtomicBool::new(true))).await, PoolKind::Auth),
        ("task-1".to_owned(), target("task-1", Arc::new(AtomicBool::new(true))).await, PoolKind::Tasks),
    ];
    let public = front_door::bind(0, "front door", "--port").await.unwrap();
    let internal = front_door::bind(0, "auth discovery", "--base-port").await.unwrap();
    let door = FrontDoor::start(public, internal, targets, config).unwrap();
    wait_for(&door, "auth-1", true).await;
    wait_for(&door, "task-1", true).await;
    let base = format!("http://{}", door.public_addr().unwrap());
    (door, base)
}

/// Sends raw bytes (for requests no HTTP client library would send) and reads the answer until
/// the connection closes: status, head, and the body as JSON.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    parse_answer(&raw_text(addr, request).await)
}

/// [`raw`], the client closing its sending side (TCP FIN) once the bytes are sent.
pub async fn raw_half_closed(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    parse_answer(&raw_text_half_closed(addr, request).await)
}

fn parse_answer(text: &str) -> (u16, String, Value) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Sends raw bytes and returns everything the front door answered until it closed.
pub async fn raw_text(addr: SocketAddr, request: &[u8]) -> String {
    exchange(addr, request, false).await
}

/// [`raw_text`], the client closing its sending side (TCP FIN) once the bytes are sent.
pub async fn raw_text_half_closed(addr: SocketAddr, request: &[u8]) -> String {
    exchange(addr, request, true).await
}

async fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the front door kept the connection open after answering");
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn assert_json_error(status: u16, head: &str, body: &Value, want: StatusCode) {
    assert_eq!(status, want.as_u16(), "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    assert_eq!(body["error"], want.canonical_reason().unwrap(), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

pub fn task_requests(door: &FrontDoor) -> u64 {
    door.backends().into_iter().find(|b| b.name == "task-1").unwrap().requests
}

/// Asserts a request the front door refused itself: `want` with the contract's JSON body and
/// `reason`, an `X-Request-Id`, `Connection: close` (the connection was closed: [`raw`] read
/// to the end), and a short message that repeats none of the request.
pub fn assert_refused(status: u16, head: &str, body: &Value, want: StatusCode, reason: &str) {
    assert_json_error(status, head, body, want);
    assert_eq!(body["reason"], reason, "{head}\n{body}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let id = head.split("\r\n").find_map(|line| line.strip_prefix("x-request-id: ")).unwrap_or_default();
    assert!(id.len() == 35 && id.starts_with("1-"), "a fresh request id of the trace id form: {head}");
    assert!(body["message"].as_str().unwrap().len() < 160, "{body}");
}
