//! auth-svc's metrics endpoint, from the real binary: process metrics, `taskmgmt_build_info`,
//! the hashing pool's and the connection pool's gauges after a registration and a login, and an
//! exposition `promtool check metrics` accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use devstack::postgres::free_port;
use devstack::postgres::testing::TestDatabase;
use devstack::process::{Output, Process, wait_healthy};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_auth-svc");
const SECRET: &str = "metrics-test-secret-0123456789-abcdefghij";

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// `promtool check metrics` (Debian's prometheus package, installed by scripts/setup.sh).
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool not found ({e}): run scripts/setup.sh (Debian package prometheus)"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn exposition_has_process_build_hashing_and_pool_metrics() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let metrics_port = free_port().unwrap();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("PORT", port.to_string()),
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        ("HASH_CONCURRENCY", "2".to_owned()),
        ("DB_MAX_CONNECTIONS", "3".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut svc = Process::spawn("auth-svc", Path::new(BIN), &[], &env, &Output::Inherit).unwrap();
    wait_healthy(&mut svc, ([127, 0, 0, 1], port).into(), "/auth/health", Duration::from_secs(60)).await.unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let user = json!({"username": "metered", "email": "m@example.com", "password": "SecurePass123!"});
    let r = http.post(format!("http://127.0.0.1:{port}/auth/register")).json(&user).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("http://127.0.0.1:{port}/auth/login"))
        .json(&json!({"username": "metered", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let text = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap();
    let s = samples(&text);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(s[&format!(r#"taskmgmt_build_info{{service="auth-svc",version="{version}"}}"#)], 1.0, "{text}");
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"] {
        assert!(s.get(name).is_some_and(|v| *v > 0.0), "{name} missing or zero:\n{text}");
    }
    assert!(s.contains_key("process_cpu_seconds_total"), "{text}");
    assert_eq!(s["auth_hash_slots"], 2.0, "HASH_CONCURRENCY");
    assert_eq!(s["auth_hash_slots_in_use"], 0.0, "no hash running after the responses");
    assert_eq!(s["auth_hash_queue_waiting"], 0.0);
    assert_eq!(s["auth_hash_queue_timeouts_total"], 0.0);
    assert_eq!(s["db_pool_max_connections"], 3.0, "DB_MAX_CONNECTIONS");
    let open = s[r#"db_pool_connections{state="idle"}"#] + s[r#"db_pool_connections{state="in_use"}"#];
    assert!((1.0..=3.0).contains(&open), "the pool opened connections for the requests: {open}\n{text}");
    promtool_check(&text);
    svc.stop(Duration::from_secs(25)).unwrap();
}
