//! task-svc's metrics endpoint, from the real binary on a real PostgreSQL: process metrics and
//! `taskmgmt_build_info`, the pool gauges at saturation, a pool timeout counted as a database
//! 503, and an exposition `promtool check metrics` accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use testkit::TestDatabase;
use testkit::exposition::{parse, promtool_check};
use testkit::free_port;
use testkit::launch::{ServiceSettings, TaskSvcSettings, loopback};

const BIN: &str = env!("CARGO_BIN_EXE_task-svc");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_saturation_and_database_503s_show_in_the_metrics() {
    let db = TestDatabase::new().await;
    let uid: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash) VALUES ('metered', 'm@example.com', 'x') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let task_id: i64 = sqlx::query_scalar("INSERT INTO tasks (user_id, title) VALUES ($1, 'locked') RETURNING id")
        .bind(uid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (port, metrics_port) = (free_port().unwrap(), free_port().unwrap());
    let settings = TaskSvcSettings::new(ServiceSettings {
        metrics: Some(loopback(metrics_port)),
        db_max_connections: Some(1),
        db_acquire_timeout_secs: Some(1),
        ..ServiceSettings::new(db.url.clone(), loopback(port))
    });
    let mut svc = settings.launch("task-svc", Path::new(BIN)).start(Duration::from_secs(60)).await.unwrap();
    let http = testkit::client();
    let base = format!("http://127.0.0.1:{port}");
    let scrape = || async {
        http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap()
    };
    let list = || http.get(format!("{base}/tasks")).header("x-user-id", uid.to_string()).send();
    assert_eq!(list().await.unwrap().status(), 200);

    // The one pooled connection blocks inside an UPDATE on a row the test holds.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(task_id).execute(&mut *lock).await.unwrap();
    let put = tokio::spawn(
        http.put(format!("{base}/tasks/{task_id}"))
            .header("x-user-id", uid.to_string())
            .json(&json!({"status": "completed"}))
            .send(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = parse(&scrape().await).unwrap();
        if s.get(r#"db_pool_connections{state="in_use"}"#) == Some(&1.0) {
            assert_eq!(s["db_pool_max_connections"], 1.0);
            assert_eq!(s[r#"db_pool_connections{state="idle"}"#], 0.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the PUT never held the connection: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another request waits DB_ACQUIRE_TIMEOUT_SECS for the pool, then gets 503.
    assert_eq!(list().await.unwrap().status(), 503);
    lock.commit().await.unwrap();
    assert_eq!(put.await.unwrap().unwrap().status(), 200);

    let text = scrape().await;
    let s = parse(&text).unwrap();
    assert_eq!(s[r#"http_unavailable_responses_total{cause="database"}"#], 1.0, "{text}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(s[&format!(r#"taskmgmt_build_info{{service="task-svc",version="{version}"}}"#)], 1.0, "{text}");
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"] {
        assert!(s.get(name).is_some_and(|v| *v > 0.0), "{name} missing or zero:\n{text}");
    }
    assert!(s.contains_key("process_cpu_seconds_total"), "{text}");
    promtool_check(&text).unwrap();
    svc.stop(Duration::from_secs(25)).unwrap();
}
