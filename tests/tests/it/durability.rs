//! `--data-dir` keeps data safely: PostgreSQL runs with its durable defaults (fsync,
//! synchronous_commit, full_page_writes on), and what the API acknowledged survives a SIGKILL of
//! every process of the stack, PostgreSQL included, and a restart on the same directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use testkit::free_port;
use testkit::process::{Signal, send_signal};
use tokio::sync::mpsc;

/// The run command as a user starts it, its output collected line by line.
struct RunCommand {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// The children it reported starting.
    pids: Vec<u32>,
    database_url: String,
    banner: String,
}

async fn start(data_dir: &Path, port: u16) -> RunCommand {
    let mut child = Command::new(bin_dir().join("devstack"))
        .args(["--port", &port.to_string(), "--gateway-grace", "1", "--service-grace", "2"])
        // Prometheus too: its data directory (DIR/prometheus) must be reusable after the SIGKILL.
        .args(["--health-interval-ms", "200", "--no-build", "--prometheus-port", "0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("CARGO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("devstack starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            let _ = tx.send(line);
        }
    });
    let (mut pids, mut database_url, mut banner) = (Vec::new(), String::new(), String::new());
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.recv().await {
            if let Some(pid) = line.split("(pid ").nth(1).and_then(|r| r.split(')').next()) {
                pids.push(pid.parse::<u32>().unwrap());
            }
            if let Some(url) = line.split("PostgreSQL is up: ").nth(1) {
                database_url = url.split_whitespace().next().unwrap().to_owned();
            }
            if line.contains("database:") {
                banner = line.clone();
            }
            if line.contains("Stop with Ctrl-C") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "devstack did not come up");
    RunCommand { child, lines, pids, database_url, banner }
}

fn kill9(pid: u32) {
    let _ = send_signal(pid, Signal::Kill);
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_of_the_whole_stack() {
    let data_dir = std::env::temp_dir().join(format!("devstack-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port().unwrap();
    let mut run = start(&data_dir, port).await;
    assert!(run.banner.contains("durable"), "the banner says the data is kept durably: {}", run.banner);
    assert!(data_dir.join("prometheus/wal").is_dir(), "Prometheus keeps its data in the run directory");

    // PostgreSQL's durable defaults, as the server reports them.
    let mut db = PgConnection::connect(&run.database_url).await.unwrap();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}")).fetch_one(&mut db).await.unwrap();
        assert_eq!(value, "on", "{setting}");
    }
    drop(db);

    let alb = format!("http://127.0.0.1:{port}");
    let c = client();
    register(&Http::new(&c, &alb), "keeper").await;
    let token = login(&Http::new(&c, &alb), "keeper").await;
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let r =
            call(&c, Method::POST, &format!("{alb}/tasks"), Some(&token), Some(json!({"title": format!("kept {n}")})))
                .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        acknowledged.push(r.json["task"]["id"].as_i64().unwrap());
    }

    // SIGKILL everything at once: the run command, its children, PostgreSQL and its backends.
    let pid_file = std::fs::read_to_string(data_dir.join("postgres/data/postmaster.pid")).unwrap();
    let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
    let mut victims = vec![run.child.id(), postmaster];
    victims.extend(&run.pids);
    victims.extend(children(postmaster));
    for pid in &victims {
        kill9(*pid);
    }
    let _ = run.child.wait();
    for _ in 0..200 {
        if victims.iter().all(|p| !alive(*p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let survivors: Vec<&u32> = victims.iter().filter(|p| alive(**p)).collect();
    assert!(survivors.is_empty(), "still running after SIGKILL: {survivors:?}");
    drop(run.lines);

    // The same data directory again: PostgreSQL recovers from its WAL.
    let port = free_port().unwrap();
    let mut run = start(&data_dir, port).await;
    let alb = format!("http://127.0.0.1:{port}");
    let token = login(&Http::new(&c, &alb), "keeper").await;
    let r = call(&c, Method::GET, &format!("{alb}/tasks?limit=100"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let stored: Vec<i64> = r.json["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    let missing: Vec<&i64> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged before the SIGKILL but missing after the restart: {missing:?}");

    let _ = send_signal(run.child.id(), Signal::Term);
    let status = tokio::task::spawn_blocking(move || run.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
