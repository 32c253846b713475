//! `[upstream] socket`: the gateway forwards to task-svc's Unix domain socket
//! (`UNIX_SOCKET_PATH`) instead of TCP, with the same decisions and header rewriting.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestDatabase;
use testkit::free_port;
use testkit::harness::*;
use testkit::launch::{self, KeyringSource, Probe, ServiceSettings, TaskSvcSettings, loopback};
use testkit::process::Output;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_over_the_unix_socket_when_one_is_configured() {
    let db = TestDatabase::new().await;
    let auth = start_auth(&db.url, OLD_SECRET, None).await;
    let port = free_port().unwrap();
    let socket = log_dir().join(format!("task-svc-{port}.sock"));
    let task = TaskSvcSettings {
        unix_socket: Some(socket.clone()),
        ..TaskSvcSettings::new(ServiceSettings {
            shutdown_grace_secs: Some(2),
            ..ServiceSettings::new(&db.url, loopback(port))
        })
    };
    let mut task_process = task
        .launch("task-svc", &bin("task-svc"))
        .output(Output::File(log_file("task-svc", port)))
        .start(Duration::from_secs(60))
        .await
        .unwrap();

    // The TCP address given to the gateway is a closed port: only the socket can answer.
    let mut sidecar = test_sidecar();
    sidecar.upstream.socket = socket.display().to_string();
    let (listen, metrics) = (loopback(free_port().unwrap()), loopback(free_port().unwrap()));
    let settings = launch::GatewaySettings {
        ready: vec![Probe::http(metrics, "/ready"), Probe::http(listen, "/tasks/health")],
        ..launch::GatewaySettings::new(
            sidecar,
            log_dir().join(format!("sidecar-uds-{}.toml", listen.port())),
            listen,
            metrics,
            loopback(free_port().unwrap()),
            format!("http://{}", auth.addr),
            KeyringSource::secret(OLD_SECRET),
        )
    };
    let mut gateway = settings
        .launch("gateway", &bin("gateway"))
        .unwrap()
        .output(Output::File(log_file("gateway-uds", listen.port())))
        .start(Duration::from_secs(30))
        .await
        .unwrap();

    let (token, user_id) = login(&auth, "sock").await;
    let c = client();
    let r = c
        .post(format!("http://{listen}/tasks"))
        .bearer_auth(&token)
        .header("X-User-Id", "999999")
        .json(&json!({"title": "through the socket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["task"]["user_id"].as_i64(), Some(user_id), "the verified identity, not the spoofed one");
    let r = c.get(format!("http://{listen}/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    let r = c.get(format!("http://{listen}/tasks")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token: decided by the gateway, never forwarded");

    // task-svc gone: the socket refuses, and the gateway answers its JSON 502.
    task_process.stop(Duration::from_secs(10)).unwrap();
    let r = c.get(format!("http://{listen}/tasks")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Bad Gateway");
    let _ = gateway.stop(Duration::from_secs(10));
}
