//! Helpers for the end-to-end tests: a stack started with the run command's own code
//! (`devstack::stack`) with short health-check and shutdown timings. Requests, test users and
//! replies are the test kit's (re-exported here for the tests' convenience).
// Test helpers: a failed expectation should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod rotation_load;

use std::path::PathBuf;
use std::time::Duration;

use devstack::launch::Binaries;
use devstack::logs::LogSink;
use devstack::monitoring::{PrometheusOptions, PrometheusPort};
use devstack::stack::{Options, Stack};
use front_door::{BackendStatus, FrontDoorConfig, HealthCheck};
use platform::keyring::Alg;
pub use testkit::accounts::{PASSWORD, login, register};
pub use testkit::api::call;
pub use testkit::{Http, Reply, client};

/// The directory of the debug binaries, checked: the e2e tests start the real ones.
pub fn bin_dir() -> PathBuf {
    let binaries = Binaries::locate().expect("binary directory");
    for name in ["auth-svc", "task-svc", "gateway", "devstack"] {
        if let Err(e) = binaries.path(name) {
            panic!("{e:#} (scripts/test.sh builds them before the e2e tests, which start the real binaries)");
        }
    }
    binaries.dir
}

/// The signing mode of the suite: `E2E_JWT_ALG` (HS256, RS256 or EdDSA; default HS256), so the
/// whole suite can run in each mode (`E2E_JWT_ALG=RS256 cargo nextest run ...`).
pub fn jwt_alg() -> Alg {
    match std::env::var("E2E_JWT_ALG") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|e| panic!("E2E_JWT_ALG={v:?}: {e}")),
        _ => Alg::HS256,
    }
}

/// The run command's options with test timings: any free port, fast health checks, short
/// shutdown graces, no Prometheus (only the `prometheus` module needs one: see
/// [`prometheus_options`]), and the signing mode of [`jwt_alg`].
pub fn options() -> Options {
    let mut opts = Options::new(bin_dir());
    opts.port = 0;
    opts.jwt_alg = jwt_alg();
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
    // Load tests send hundreds of requests a second as one user: far above the per-user rate
    // limit, which the gateway's own tests cover.
    opts.sidecar_set =
        vec![("rate_limit.fleet_rate_per_sec".into(), "1000000".into()), ("rate_limit.burst".into(), "1000000".into())];
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

/// The front door's view of target `name`.
pub fn target(stack: &Stack, name: &str) -> BackendStatus {
    stack.backends().into_iter().find(|b| b.name == name).unwrap_or_else(|| panic!("no target {name}"))
}

/// Reads a Prometheus counter's value (`series` as exposed, labels included) from `metrics`
/// (`/metrics`, parsed strictly), 0 when absent.
pub async fn counter(c: &reqwest::Client, metrics: std::net::SocketAddr, series: &str) -> u64 {
    let text = c.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    testkit::exposition::sample(&testkit::exposition::samples(&text), series) as u64
}
