//! Through the whole stack, what a client of the ALB can tell: an early answer of a gateway or
//! task-svc arrives as that answer (not a 502), and every refusal, the load balancer's own or a
//! gateway's, is the contract's JSON error with a `reason` and an `X-Request-Id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use e2e::*;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_and_rejections_reach_the_client_as_json() {
    let db = TestDatabase::new().await;
    let stack = start_on(&db.url).await;
    let alb = stack.url();
    let c = client();
    register(&Http::new(&c, &alb), "bigbody").await;
    let token = login(&Http::new(&c, &alb), "bigbody").await;

    // 10 MB: the gateway answers 413 over its 64 KiB limit; without a token it answers 401 first.
    let big = vec![b'x'; 10 << 20];
    for (auth, want) in [(Some(&token), StatusCode::PAYLOAD_TOO_LARGE), (None, StatusCode::UNAUTHORIZED)] {
        let mut req = c.post(format!("{alb}/tasks")).header("content-type", "application/json").body(big.clone());
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "the target's answer, not a 502");
        assert!(r.headers().get("x-request-id").is_some());
        let j: Value = r.json().await.unwrap();
        assert_eq!(j["error"], want.canonical_reason().unwrap(), "{j}");
        if want == StatusCode::PAYLOAD_TOO_LARGE {
            assert_eq!(j["reason"], "body_too_large", "{j}");
        }
    }

    // Each limit and malformed head, answered by the front door (the ALB's limits, larger) or by
    // the gateway behind it (its tighter ones), as the contract's JSON with a reason.
    let fields =
        |n: usize, size: usize| -> String { (0..n).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(size))).collect() };
    let get = |target: &str, headers: String| {
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n")
    };
    let cases: Vec<(String, u16, &str)> = vec![
        ("GET /tasks HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400, "malformed_request"),
        ("GET /tasks HTTP/1.1\r\n\r\n".into(), 400, "malformed_request"),
        (
            "POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            400,
            "malformed_request",
        ),
        (get(&format!("/tasks?q={}", "a".repeat(10 * 1024)), String::new()), 414, "uri_too_long"),
        (get(&format!("/tasks?q={}", "a".repeat(17 * 1024)), String::new()), 414, "uri_too_long"),
        (get("/tasks", fields(70, 1)), 431, "too_many_headers"),
        (get("/tasks", fields(101, 1)), 431, "too_many_headers"),
        (get("/tasks", fields(3, 15 * 1024)), 431, "headers_too_large"),
        (get("/tasks", fields(1, 17 * 1024)), 400, "headers_too_large"),
    ];
    for (request, status, reason) in cases {
        let (got, head, body) = raw(stack.front_door_addr(), request.as_bytes()).await;
        let name = request.get(..40).unwrap_or(&request);
        assert_eq!((got, body["reason"].as_str()), (status, Some(reason)), "{name:?}: {head}\n{body}");
        assert_eq!(body["error"], StatusCode::from_u16(status).unwrap().canonical_reason().unwrap(), "{body}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{name:?}: {head}");
        assert!(head.contains("x-request-id: "), "{name:?}: {head}");
    }

    // The internal validation endpoint is not reachable through the load balancer.
    let r = c.post(format!("{alb}/auth/validate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    stack.shutdown().await.unwrap();
}

/// Writes `request` on a new connection and reads until it closes (10 s at most): the status,
/// the head, and the body as JSON.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), serde_json::from_str(body).unwrap_or(Value::Null))
}
