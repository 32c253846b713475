//! auth-svc's metrics endpoint, from the real binary: process metrics, `taskmgmt_build_info`,
//! the hashing pool's and the connection pool's gauges after a registration and a login, and an
//! exposition `promtool check metrics` accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use testkit::TestDatabase;
use testkit::exposition::{parse, promtool_check};
use testkit::free_port;
use testkit::launch::{AuthSvcSettings, KeyringSource, ServiceSettings, loopback};

const BIN: &str = env!("CARGO_BIN_EXE_auth-svc");
const SECRET: &str = "metrics-test-secret-0123456789-abcdefghij";

#[tokio::test]
async fn exposition_has_process_build_hashing_and_pool_metrics() {
    let db = TestDatabase::new().await;
    let (port, metrics_port) = (free_port().unwrap(), free_port().unwrap());
    let settings = AuthSvcSettings {
        hash_concurrency: Some(2),
        ..AuthSvcSettings::new(
            ServiceSettings {
                metrics: Some(loopback(metrics_port)),
                db_max_connections: Some(3),
                ..ServiceSettings::new(db.url.clone(), loopback(port))
            },
            KeyringSource::secret(SECRET),
        )
    };
    let mut svc = settings.launch("auth-svc", Path::new(BIN)).start(Duration::from_secs(60)).await.unwrap();
    let http = testkit::client();
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
    let s = parse(&text).unwrap();
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
    assert_eq!(s["auth_hash_jobs_total"], 2.0, "one hash for the registration, one verification for the login");
    assert_eq!(s["db_pool_max_connections"], 3.0, "DB_MAX_CONNECTIONS");
    let open = s[r#"db_pool_connections{state="idle"}"#] + s[r#"db_pool_connections{state="in_use"}"#];
    assert!((1.0..=3.0).contains(&open), "the pool opened connections for the requests: {open}\n{text}");
    promtool_check(&text).unwrap();
    svc.stop(Duration::from_secs(25)).unwrap();
}
