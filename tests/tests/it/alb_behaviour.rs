//! Through the whole stack, what a client of the ALB can tell: an early answer of a gateway or
//! task-svc arrives as that answer (not a 502), and the load balancer's own rejections are JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

    // 10 MB: task-svc answers 413 after 64 KiB; without a token the gateway answers 401 first.
    let big = vec![b'x'; 10 << 20];
    for (auth, want) in [(Some(&token), StatusCode::PAYLOAD_TOO_LARGE), (None, StatusCode::UNAUTHORIZED)] {
        let mut req = c.post(format!("{alb}/tasks")).header("content-type", "application/json").body(big.clone());
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "the target's answer, not a 502");
        let j: Value = r.json().await.unwrap();
        assert_eq!(j["error"], want.canonical_reason().unwrap(), "{j}");
    }

    // Two Host lines: the front door answers itself, in the contract's error shape.
    let mut s = tokio::net::TcpStream::connect(stack.front_door_addr()).await.unwrap();
    s.write_all(b"GET /tasks HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains(r#""error":"Bad Request""#), "{text}");

    // The internal validation endpoint is not reachable through the load balancer.
    let r = c.post(format!("{alb}/auth/validate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    stack.shutdown().await.unwrap();
}
