//! SIGTERM to the real run command (the `devstack` binary) under a steady write load: every
//! acknowledged write (201) is in the database afterwards, and everything has exited within
//! the configured grace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::*;
use reqwest::StatusCode;
use serde_json::json;
use testkit::process::{Signal, send_signal};
use testkit::{TestDatabase, free_port, wait};
use tokio::sync::mpsc;

/// The configured grace: Prometheus' own stop first (well under a second), then gateways
/// 1 s plus 1 s shutdown timeout, then services 2 s (in order, so they add up), plus room for
/// PostgreSQL's fast stop on a loaded 2-core machine.
const EXIT_WITHIN: Duration = Duration::from_secs(1 + 1 + 1 + 2 + 4);
/// After this the test kills it and fails.
const GIVE_UP: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_write_and_exits_in_time() {
    let db = TestDatabase::new().await;
    let port = free_port().unwrap();
    let bin = bin_dir().join("devstack");
    let mut child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--gateway-grace", "1", "--service-grace", "2"])
        .args(["--health-interval-ms", "200", "--no-build", "--prometheus-port", "0"])
        .env("DATABASE_URL", &db.url)
        // Started by the test, not by cargo: never rebuild from inside the test.
        .env_remove("CARGO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("devstack starts");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            let _ = lines_tx.send(line);
        }
    });

    // Ready once the banner names the URL; collect the children's pids on the way.
    let mut pids = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.recv().await {
            if let Some(pid) = line.split("(pid ").nth(1).and_then(|r| r.split(')').next()) {
                pids.push(pid.parse::<u32>().unwrap());
            }
            if line.contains("Task Management API is running") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "devstack did not come up");
    assert_eq!(pids.len(), 7, "2 auth-svc + 2 task-svc + 2 gateways + Prometheus");

    let alb = format!("http://127.0.0.1:{port}");
    let c = client();
    register(&Http::new(&c, &alb), "loader").await;
    let token = login(&Http::new(&c, &alb), "loader").await;

    // Steady load: 4 writers, each bounded by count and time, until the front door is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (c, alb, token, stop, written) = (client(), alb.clone(), token.clone(), stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            let start = Instant::now();
            for n in 0..2000 {
                if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(40) {
                    break;
                }
                let sent = c
                    .post(format!("{alb}/tasks"))
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("load {w}-{n}")}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        acknowledged.push(body["task"]["id"].as_i64().unwrap());
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    // During shutdown anything but a 201 is allowed; only 201s are promises.
                    Ok(_) => {}
                    Err(_) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acknowledged, refused)
        }));
    }
    // SIGTERM lands under load: once writes are being acknowledged.
    wait::until("10 acknowledged writes", Duration::from_secs(30), || {
        let n = written.load(Ordering::Relaxed);
        async move { n >= 10 }
    })
    .await;

    let sigterm = Instant::now();
    send_signal(child.id(), Signal::Term).unwrap();
    let exit = tokio::task::spawn_blocking(move || {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if sigterm.elapsed() > GIVE_UP {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let took = sigterm.elapsed();
    stop.store(true, Ordering::Relaxed);
    let exit = exit.unwrap_or_else(|| panic!("devstack still running {GIVE_UP:?} after SIGTERM"));
    assert!(exit.success(), "devstack exited with {exit:?}");
    println!("devstack exited {took:?} after SIGTERM");
    assert!(took <= EXIT_WITHIN, "devstack took {took:?} to stop, more than the configured {EXIT_WITHIN:?}");

    // In order: Prometheus, front door, gateways, services (PostgreSQL is external here).
    let mut after = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), lines.recv()).await {
        after.push(line);
    }
    let at = |needle: &str| {
        after.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} line after SIGTERM"))
    };
    let front_door = at("stopping the front door");
    let gateways = at("gateway-1 exited").max(at("gateway-2 exited"));
    let first_service = ["auth-1 exited", "auth-2 exited", "task-svc-1 exited", "task-svc-2 exited"].map(at);
    assert!(at("prometheus exited") < front_door, "Prometheus stops first: {after:#?}");
    assert!(front_door < at("stopping the gateways"), "{after:#?}");
    assert!(first_service.iter().all(|s| gateways < *s), "services stopped before the gateways: {after:#?}");

    // Every child is gone too (not left behind in its own process group).
    for pid in &pids {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
        assert!(!alive, "child pid {pid} is still running");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the front door still accepts");

    let mut acknowledged = Vec::new();
    for w in writers {
        let (ids, _) = w.await.unwrap();
        acknowledged.extend(ids);
    }
    assert!(acknowledged.len() >= 10, "the load did not get going: {} writes", acknowledged.len());
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM tasks WHERE id = ANY($1)")
        .bind(&acknowledged)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let missing: Vec<&i64> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    println!("{} acknowledged writes, all stored", acknowledged.len());
}
