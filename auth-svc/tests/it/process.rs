//! auth-svc as a process: SIGTERM with a request in flight, the `healthcheck` subcommand, and
//! refusing to start with a weak secret.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::launch::{AuthSvcSettings, KeyringSource, ServiceSettings, loopback};
use testkit::process::{Process, healthcheck_exit_code};
use testkit::{TestDatabase, free_port, wait};

const BIN: &str = env!("CARGO_BIN_EXE_auth-svc");
const SECRET: &str = "process-test-secret-0123456789-abcdefgh";

async fn start(db: &TestDatabase, port: u16) -> Process {
    let service = ServiceSettings { shutdown_grace_secs: Some(10), ..ServiceSettings::new(&db.url, loopback(port)) };
    let launch = AuthSvcSettings::new(service, KeyringSource::secret(SECRET)).launch("auth-svc", Path::new(BIN));
    launch.start(Duration::from_secs(60)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_registration_finish() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let mut svc = start(&db, port).await;

    // Block inserts into users so the registration is in flight when SIGTERM arrives.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let register = tokio::spawn(
        testkit::client()
            .post(format!("http://127.0.0.1:{port}/auth/register"))
            .json(&json!({"username": "inflight", "email": "i@example.com", "password": "SecurePass123!"}))
            .timeout(Duration::from_secs(30))
            .send(),
    );
    db.wait_for_lock_waiter(Duration::from_secs(30)).await;
    assert!(!register.is_finished(), "registration is blocked on the lock");
    svc.terminate().unwrap();
    // Shutdown has begun once the listener is closed; the process stays to drain the request.
    wait::until("the listener closed after SIGTERM", Duration::from_secs(10), || {
        wait::refuses_connections(loopback(port))
    })
    .await;
    assert!(svc.is_running(), "draining");
    assert!(!register.is_finished(), "the registration is still in flight");
    lock.commit().await.unwrap();

    let r = register.await.unwrap().unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["username"], "inflight");
    let status = tokio::task::spawn_blocking(move || svc.wait_timeout(Duration::from_secs(10)).unwrap()).await.unwrap();
    assert!(status.expect("exited within the grace").success());
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'inflight'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, 1, "the acknowledged registration is stored");
}

#[tokio::test]
async fn healthcheck_subcommand_reports_the_local_service() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let _svc = start(&db, port).await;
    assert_eq!(healthcheck_exit_code(Path::new(BIN), port).unwrap(), Some(0));
    let closed = free_port().unwrap();
    assert_eq!(healthcheck_exit_code(Path::new(BIN), closed).unwrap(), Some(1));
}

#[test]
fn a_short_jwt_secret_refuses_to_start_naming_the_key() {
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .env("JWT_SECRET", "short-secret-value")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains("short-secret-value"), "the secret is never echoed: {stderr}");
}
