//! SIGTERM during a slow request: the gateway stops accepting, lets the request finish, exits
//! within its configured grace, and its batched log loses no line on the way out.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::harness::*;
use testkit::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_and_exits_within_the_grace() {
    let mut stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| {
        f.shutdown.grace_period_secs = 3;
        f.shutdown.graceful_shutdown_timeout_secs = 1;
    })
    .await;
    let (token, _) = login(&stack.auth, "slow").await;
    let task = create_task(&stack.gateway, &token, "to be updated").await;
    let id = task["id"].as_i64().unwrap();

    // Hold the row so task-svc's UPDATE blocks: a slow request in flight.
    let mut tx = stack.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await.unwrap();
    let c = client();
    let url = stack.gateway.url_for(&format!("/tasks/{id}"));
    let put = tokio::spawn(async move {
        let r = c
            .put(url)
            .bearer_auth(token)
            .header("x-request-id", "put-during-shutdown")
            .json(&json!({"title": "updated"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    stack.db.wait_for_lock_waiter(Duration::from_secs(30)).await;
    assert!(!put.is_finished(), "the request should be blocked on the row lock");

    stack.gateway.process.terminate().unwrap();
    let sigterm = Instant::now();
    // New connections are no longer accepted, while the request is still in flight and the
    // gateway still running (draining, not gone).
    let addr = stack.gateway.addr;
    wait::until("the listener closed after SIGTERM", Duration::from_secs(3), || wait::refuses_connections(addr)).await;
    assert!(!put.is_finished(), "the request is still in flight");
    assert!(stack.gateway.process.is_running(), "the gateway is draining, not gone");

    tokio::time::sleep(Duration::from_millis(700)).await;
    tx.commit().await.unwrap();
    let (status, body) = put.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["title"], "updated");

    let exit = tokio::task::block_in_place(|| stack.gateway.process.wait_timeout(Duration::from_secs(8))).unwrap();
    let took = sigterm.elapsed();
    let exit = exit.expect("gateway did not exit");
    assert!(exit.success(), "{exit:?}");
    // grace (3 s) + final timeout (1 s) + process start/stop slack.
    assert!(took <= Duration::from_millis(5500), "exited after {took:?}");

    // The access log is written in batches by a background thread; the last batch is written
    // when main returns, so the PUT's line and the final line are both there.
    let log = std::fs::read_to_string(log_path("gateway", stack.gateway.addr.port())).unwrap();
    assert!(log.contains("put-during-shutdown"), "the PUT's access line is missing:\n{log}");
    let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.contains("gateway stopped"), "the log does not end with the final line: {last}");
}
