//! Helpers for the end-to-end tests: a stack started with the run command's own code
//! (`devstack::stack`), short health-check and shutdown timings, and an HTTP client that
//! speaks to the front door the way the guide's curl commands do.
// Test helpers: a failed expectation should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use devstack::logs::LogSink;
use devstack::monitoring::{PrometheusOptions, PrometheusPort};
use devstack::stack::{Options, Stack};
use front_door::{BackendStatus, FrontDoorConfig, HealthCheck};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "SecurePass123!";

/// The directory of the debug binaries, checked: the e2e tests start the real ones.
pub fn bin_dir() -> PathBuf {
    let dir = devstack::process::bin_dir().expect("binary directory");
    for name in ["auth-svc", "task-svc", "gateway", "devstack"] {
        assert!(
            dir.join(name).exists(),
            "{} not found: run `cargo build --workspace --bins` before the e2e tests (scripts/test.sh does): they start the real binaries",
            dir.join(name).display()
        );
    }
    dir
}

/// The run command's options with test timings: any free port, fast health checks, short
/// shutdown graces, and no Prometheus (only `tests/prometheus.rs` needs one: see
/// [`prometheus_options`]).
pub fn options() -> Options {
    let mut opts = Options::new(bin_dir());
    opts.port = 0;
    opts.front_door = FrontDoorConfig {
        health: HealthCheck {
            interval: Duration::from_millis(150),
            timeout: Duration::from_millis(500),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        drain: Duration::from_secs(5),
        ..FrontDoorConfig::default()
    };
    opts.gateway_grace_secs = Some(1);
    opts.gateway_shutdown_timeout_secs = Some(1);
    opts.service_grace_secs = Some(2);
    // Output goes to the test's stdout, which nextest shows when a test fails.
    opts.logs = LogSink::stdout();
    opts.logs.install_tracing(&[("front_door", "front-door")]);
    // A Prometheus per stack would only add load to tests that do not look at it.
    opts.prometheus = None;
    opts
}

/// The run command's Prometheus on any free port (tests run in parallel).
pub fn prometheus_options() -> PrometheusOptions {
    PrometheusOptions { port: PrometheusPort::Exactly(0), ..PrometheusOptions::default() }
}

/// A stack on a fresh database of the shared test server (faster than a cluster per test).
pub async fn start_on(db_url: &str) -> Stack {
    let mut opts = options();
    opts.database_url = Some(db_url.to_owned());
    Stack::start(opts).await.expect("the stack starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// A response: status and JSON body (`Null` when the body is empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub json: Value,
}

impl Reply {
    /// Asserts the contract's error body for `status`.
    pub fn assert_error(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.json);
        assert!(self.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")), "{self:?}");
        assert_eq!(self.json["error"], status.canonical_reason().unwrap(), "{}", self.json);
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.json);
    }
}

/// Sends one request to `base` + `path`, like the guide's curl commands.
pub async fn call(c: &reqwest::Client, method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = c.request(method, url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = resp.bytes().await.unwrap();
    Reply { status, content_type, json: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

/// Registers `username` (guide's body) and returns the user.
pub async fn register(c: &reqwest::Client, base: &str, username: &str) -> Value {
    let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let r = call(c, Method::POST, &format!("{base}/auth/register"), None, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    r.json["user"].clone()
}

/// Logs in and returns the token.
pub async fn login(c: &reqwest::Client, base: &str, username: &str) -> String {
    let body = json!({"username": username, "password": PASSWORD});
    let r = call(c, Method::POST, &format!("{base}/auth/login"), None, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["token"].as_str().unwrap().to_owned()
}

/// The front door's view of target `name`.
pub fn target(stack: &Stack, name: &str) -> BackendStatus {
    stack.backends().into_iter().find(|b| b.name == name).unwrap_or_else(|| panic!("no target {name}"))
}

/// Reads a Prometheus counter's value from `metrics` (`/metrics`), 0 when absent.
pub async fn counter(c: &reqwest::Client, metrics: std::net::SocketAddr, series: &str) -> u64 {
    let text = c.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}
