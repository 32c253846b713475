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
use devstack::front_door::{self, FrontDoor, FrontDoorConfig, HealthCheck, PoolKind};
use devstack::process::LogSink;
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
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
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
    let mut door = FrontDoor::start(public, internal, targets, config(), LogSink::stdout()).unwrap();
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
    assert_eq!(j["headers"]["authorization"], "Bearer t");
    assert!(j["headers"].get("x-drop-me").is_none(), "{j}");
    assert_eq!(j["body_len"], 100_000);

    // The Cloud Map stand-in: any path to the auth pool, no X-Forwarded-*.
    let (_, j) = get(&format!("{discovery}/auth/validate")).await;
    assert!(j["target"].as_str().unwrap().starts_with("auth-"), "{j}");
    assert!(j["headers"].get("x-forwarded-for").is_none(), "{j}");

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
