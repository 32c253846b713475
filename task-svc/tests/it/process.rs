//! task-svc as a process: the real binary on a loopback port, stopped and restarted databases,
//! SIGTERM with a request in flight, the `healthcheck` subcommand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::launch::{Launch, Logging, ServiceSettings, TaskSvcSettings, loopback};
use testkit::postgres::{Cluster, Durability, free_port};
use testkit::process::{Output, Process, healthcheck_exit_code};
use testkit::{TestDatabase, client, wait};

const BIN: &str = env!("CARGO_BIN_EXE_task-svc");

/// task-svc on `port` with a short pool wait (2 s), its metrics listener off.
fn settings(database_url: &str, port: u16) -> TaskSvcSettings {
    TaskSvcSettings::new(ServiceSettings {
        db_acquire_timeout_secs: Some(2),
        ..ServiceSettings::new(database_url, loopback(port))
    })
}

async fn start(settings: TaskSvcSettings) -> Process {
    settings.launch("task-svc", Path::new(BIN)).start(Duration::from_secs(60)).await.unwrap()
}

async fn user(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash) VALUES ('proc', 'p@example.com', 'x') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_then_recovers_without_restart() {
    let dir = std::env::temp_dir().join(format!("task-svc-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Cluster::start(&dir, free_port().unwrap(), Durability::Fast).unwrap()
    })
    .await
    .unwrap();
    let url = cluster.url("postgres");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    platform::db::MIGRATOR.run(&pool).await.unwrap();
    let uid = user(&pool).await.to_string();
    pool.close().await;

    let port = free_port().unwrap();
    let mut svc = start(settings(&url, port)).await;
    let pid = svc.pid();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let create =
        || http.post(format!("{base}/tasks")).header("x-user-id", &uid).json(&json!({"title": "survives"})).send();
    assert_eq!(create().await.unwrap().status(), 201);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    let r = http.get(format!("{base}/tasks")).header("x-user-id", &uid).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Service Unavailable");
    assert!(!body.to_string().to_lowercase().contains("sqlx"), "no internals: {body}");
    assert!(took < Duration::from_secs(5), "503 comes quickly, took {took:?}");
    assert!(svc.is_running(), "the service stays up while the database is down");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart().unwrap();
        cluster
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(format!("{base}/tasks")).header("x-user-id", &uid).send().await.unwrap();
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["tasks"][0]["title"], "survives");
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "service did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(create().await.unwrap().status(), 201);
    assert_eq!(svc.pid(), pid);
    svc.stop(Duration::from_secs(10)).unwrap();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish() {
    let db = TestDatabase::new().await;
    let uid = user(&db.pool).await;
    let task_id: i64 = sqlx::query_scalar("INSERT INTO tasks (user_id, title) VALUES ($1, 'locked') RETURNING id")
        .bind(uid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let port = free_port().unwrap();
    let mut svc = start(TaskSvcSettings {
        service: ServiceSettings { shutdown_grace_secs: Some(10), ..settings(&db.url, port).service },
        ..settings(&db.url, port)
    })
    .await;

    // Hold the row so the PUT blocks inside its UPDATE.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(task_id).execute(&mut *lock).await.unwrap();
    let http = client();
    let put = tokio::spawn(
        http.put(format!("http://127.0.0.1:{port}/tasks/{task_id}"))
            .header("x-user-id", uid.to_string())
            .json(&json!({"status": "completed"}))
            .send(),
    );
    db.wait_for_lock_waiter(Duration::from_secs(30)).await;
    assert!(!put.is_finished(), "the request is in flight");
    svc.terminate().unwrap();
    // New connections are refused once shutdown has begun; the process stays to drain.
    wait::until("the listener closed after SIGTERM", Duration::from_secs(10), || {
        wait::refuses_connections(loopback(port))
    })
    .await;
    assert!(svc.is_running(), "still draining the in-flight request");
    assert!(!put.is_finished(), "the request is still in flight");
    lock.commit().await.unwrap();

    let r = put.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["task"]["status"], "completed");
    let status = tokio::task::spawn_blocking(move || svc.wait_timeout(Duration::from_secs(10)).unwrap()).await.unwrap();
    assert!(status.expect("exited within the grace").success());
}

#[tokio::test]
async fn healthcheck_subcommand_reports_the_local_service() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let _svc = start(settings(&db.url, port)).await;
    assert_eq!(healthcheck_exit_code(Path::new(BIN), port).unwrap(), Some(0));
    let closed = free_port().unwrap();
    assert_eq!(healthcheck_exit_code(Path::new(BIN), closed).unwrap(), Some(1));
}

#[test]
fn bad_configuration_exits_78_naming_the_key() {
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")
        .env("PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORT"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // The log format too: a typo is not silently compact text.
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_FORMAT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_metrics_have_their_own_port() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let metrics_port = free_port().unwrap();
    let log = testkit::harness::log_file("task-svc-json", port);
    let settings = TaskSvcSettings {
        service: ServiceSettings {
            metrics: Some(loopback(metrics_port)),
            ..ServiceSettings::new(&db.url, loopback(port))
        },
        unix_socket: None,
        logging: Logging { filter: Some("info".into()), ..Logging::json() },
    };
    let launch = settings.launch("task-svc", Path::new(BIN)).output(Output::File(log.clone()));
    let mut svc = launch.start(Duration::from_secs(60)).await.unwrap();

    let http = client();
    let r = http
        .get(format!("http://127.0.0.1:{port}/tasks/77"))
        .header("x-user-id", "5")
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "req-abc-123", "the request id is passed back");
    let r = http.get(format!("http://127.0.0.1:{port}/tasks/health")).send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"), "a request id is created when absent");
    // An id the gateway would not keep is not kept here either: replaced by a fresh UUID.
    let long = "a".repeat(129);
    for bad in ["x\" user_id=1 fake=\"1", "<script>", "a b", long.as_str()] {
        let r =
            http.get(format!("http://127.0.0.1:{port}/tasks/health")).header("x-request-id", bad).send().await.unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 36, "a fresh UUID: {echoed}");
    }

    let text = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/tasks/{id}",status="4xx"} 1"#), "{text}");
    let on_api_port = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(on_api_port.status(), 404, "metrics are not on the API port");

    svc.stop(Duration::from_secs(10)).unwrap();
    let lines = std::fs::read_to_string(&log).unwrap();
    let mut saw_request_id = false;
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v.to_string().contains("req-abc-123") {
            saw_request_id = true;
        }
    }
    assert!(saw_request_id, "a log line carries the request id:\n{lines}");
    // At info the access log has the real request, not the health checks (polled on a timer).
    let access: Vec<&str> = lines.lines().filter(|l| l.contains("finished processing request")).collect();
    assert!(access.iter().any(|l| l.contains("/tasks/77")), "the request's access line:\n{lines}");
    assert!(!access.iter().any(|l| l.contains("/tasks/health")), "health checks logged at info:\n{lines}");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_starting_together_on_a_fresh_database_migrate_once() {
    let db = TestDatabase::empty().await;
    let ports = [free_port().unwrap(), free_port().unwrap(), free_port().unwrap()];
    let launches: Vec<Launch> = ports
        .iter()
        .map(|p| TaskSvcSettings::new(ServiceSettings::new(&db.url, loopback(*p))).launch("task-svc", Path::new(BIN)))
        .collect();
    // Spawned back to back: they race for the schema; sqlx's advisory lock lets one migrate.
    let mut procs: Vec<Process> = launches.iter().map(|l| l.spawn().unwrap()).collect();
    for (p, launch) in procs.iter_mut().zip(&launches) {
        launch.wait_ready(p, Duration::from_secs(60)).await.unwrap();
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&db.pool).await.unwrap();
    assert_eq!(applied, platform::db::MIGRATOR.iter().count() as i64);
    let uid = user(&db.pool).await;
    let r = client()
        .post(format!("http://127.0.0.1:{}/tasks", ports[2]))
        .header("x-user-id", uid.to_string())
        .json(&json!({"title": "schema works"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// One HTTP/1.1 request over a Unix domain socket; the whole answer as text.
async fn unix_request(path: &Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_same_routes_on_a_unix_socket_and_removes_it_on_exit() {
    let db = TestDatabase::new().await;
    let uid = user(&db.pool).await;
    let port = free_port().unwrap();
    let socket = std::env::temp_dir().join(format!("task-svc-{}-{port}.sock", std::process::id()));
    // A stale socket file from a killed run is replaced, not an error.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut svc = start(TaskSvcSettings { unix_socket: Some(socket.clone()), ..settings(&db.url, port) }).await;

    let health =
        unix_request(&socket, "GET /tasks/health HTTP/1.1\r\nHost: task-svc\r\nConnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = r#"{"title":"over the socket"}"#;
    let created = unix_request(
        &socket,
        &format!(
            "POST /tasks HTTP/1.1\r\nHost: task-svc\r\nX-User-Id: {uid}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    assert!(created.contains("over the socket"), "{created}");
    // The identity header is still required on the socket: it is the same router.
    let anonymous = unix_request(&socket, "GET /tasks HTTP/1.1\r\nHost: task-svc\r\nConnection: close\r\n\r\n").await;
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    // TCP keeps working beside it.
    let r = client().get(format!("http://127.0.0.1:{port}/tasks/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    svc.terminate().unwrap();
    let status = tokio::task::spawn_blocking(move || svc.wait_timeout(Duration::from_secs(30)).unwrap()).await.unwrap();
    assert!(status.expect("exited").success());
    assert!(!socket.exists(), "the socket file is removed on exit");
}

#[test]
fn a_regular_file_at_the_socket_path_is_refused_not_removed() {
    let path = std::env::temp_dir().join(format!("task-svc-not-a-socket-{}", std::process::id()));
    std::fs::write(&path, "keep me").unwrap();
    let err = task_svc::bind_unix(&path).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();
}
