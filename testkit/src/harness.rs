//! The processes the gateway tests run: real PostgreSQL, the real auth-svc, task-svc and
//! gateway binaries on loopback ports picked at run time, and the gateway's `sidecar.toml`
//! written from [`SidecarFile`]: the tests' default ([`test_sidecar`]) with each test's edits,
//! so a new gateway setting needs no change here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use devstack::launch::{self, AuthSvcSettings, Binaries, Probe, ServiceSettings, TaskSvcSettings, loopback};
pub use devstack::launch::{KeyringSource, LogFormat, Logging, RunningService};
use devstack::postgres::free_port;
use devstack::process::Output;
use gateway::config::SidecarFile;
use serde_json::{Value, json};

pub use crate::accounts::{mint, unix_now};
use crate::api::Http;
pub use crate::api::client;
use crate::database::TestDatabase;
pub use crate::exposition::{sample, samples};
use crate::moto::Moto;

/// The keyring secret before a rotation (and of most tests).
pub const OLD_SECRET: &str = "old-secret-0123456789abcdef0123456789abcdef";
/// The keyring secret after a rotation.
pub const NEW_SECRET: &str = "new-secret-0123456789abcdef0123456789abcdef";

/// A binary of the workspace, with a clear message when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    Binaries::locate()
        .and_then(|b| b.path(name))
        .unwrap_or_else(|e| panic!("{e:#} (the gateway tests start the real binaries)"))
}

/// Where the harness's processes write their logs and config files (`<temp>/gateway-tests`).
/// Every test process names its files by its pid, so the directory would grow with every run:
/// the first call in a process removes the files last written more than [`LOG_RETENTION`] ago
/// (a test reads only the files its own process wrote moments before).
pub fn log_dir() -> PathBuf {
    static PRUNED: std::sync::Once = std::sync::Once::new();
    let dir = std::env::temp_dir().join("gateway-tests");
    std::fs::create_dir_all(&dir).unwrap();
    PRUNED.call_once(|| prune(&dir, LOG_RETENTION));
    dir
}

/// How long [`log_dir`] keeps a file after its last write: a day, for reading a failed run's
/// logs afterwards.
pub const LOG_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Removes the files in `dir` last modified more than `age` ago; a file it cannot read or remove
/// (another run's, just removed) is left alone.
fn prune(dir: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|elapsed| elapsed > age));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Where process `name` listening on `port`, started by this test process, writes its log:
/// `<log_dir>/<name>-<port>-<test pid>.log` (other checkouts' test runs share the directory and
/// can take the same port once it is free). Tests read a process's log here; [`log_file`]
/// makes it.
pub fn log_path(name: &str, port: u16) -> PathBuf {
    log_dir().join(format!("{name}-{port}-{}.log", std::process::id()))
}

/// A fresh log file for process `name` about to listen on `port` (its path printed, for a
/// failing test). A file left by an earlier process on the same port (an earlier test or run:
/// ports are reused and the processes append) is removed, so a test reading this log sees only
/// this process's lines.
pub fn log_file(name: &str, port: u16) -> PathBuf {
    let path = log_path(name, port);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove the old log {}: {e}", path.display()),
    }
    eprintln!("{name} log: {}", path.display());
    path
}

/// Starts moto_server with its log in [`log_dir`].
pub async fn start_moto() -> Moto {
    Moto::start(&log_dir()).await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The services' settings the gateway tests use: their own ports, a short shutdown grace.
fn service(db_url: &str) -> ServiceSettings {
    ServiceSettings {
        metrics: Some(loopback(free_port().unwrap())),
        shutdown_grace_secs: Some(2),
        ..ServiceSettings::new(db_url, loopback(free_port().unwrap()))
    }
}

/// auth-svc on `db_url`, signing with `secret` (and verifying `previous`).
pub async fn start_auth(db_url: &str, secret: &str, previous: Option<&str>) -> RunningService {
    start_auth_with(AuthSvcSettings::new(service(db_url), KeyringSource::rotating(secret, previous))).await
}

/// auth-svc's test settings on `db_url` (free loopback ports) with `keyring`, to adjust or to
/// learn its address before [`start_auth_with`].
pub fn auth_settings(db_url: &str, keyring: KeyringSource) -> AuthSvcSettings {
    AuthSvcSettings::new(service(db_url), keyring)
}

/// auth-svc with `settings`; returns once `/auth/health` answers.
pub async fn start_auth_with(settings: AuthSvcSettings) -> RunningService {
    let (addr, metrics) = (settings.service.listen, settings.service.metrics);
    let launch = settings.launch("auth-svc", &bin("auth-svc")).output(Output::File(log_file("auth-svc", addr.port())));
    RunningService::start("auth-svc", &launch, addr, metrics, Duration::from_secs(60)).await.unwrap()
}

/// task-svc on `db_url`.
pub async fn start_task(db_url: &str) -> RunningService {
    let settings = TaskSvcSettings::new(service(db_url));
    let (addr, metrics) = (settings.service.listen, settings.service.metrics);
    let launch = settings.launch("task-svc", &bin("task-svc")).output(Output::File(log_file("task-svc", addr.port())));
    RunningService::start("task-svc", &launch, addr, metrics, Duration::from_secs(60)).await.unwrap()
}

/// The gateway's config schema with the tests' values: two proxy threads, quick
/// re-resolution and retries, no leeway, a 1 s revocation poll, a short shutdown, per-subject
/// rate limits no test reaches unless it sets its own, an access line for every request. The public
/// routes are the gateway's defaults (the repository's sidecar.toml states them).
pub fn test_sidecar() -> SidecarFile {
    let mut f = SidecarFile::default();
    f.server.threads = 2;
    f.upstream.read_timeout_ms = 10_000;
    f.upstream.write_timeout_ms = 5000;
    // Generous: a loopback connect only takes long when a busy machine's accept queue drops a
    // SYN, whose retransmission comes after 1 s; no test here is about connect timeouts (a
    // refused connection is immediate), and 200 concurrent requests must not turn into 504s.
    f.upstream.connect_timeout_ms = 5000;
    f.upstream.total_connect_timeout_ms = 10_000;
    f.auth.resolve_interval_secs = 1;
    // Generous for the same reason: a busy machine's auth-svc can take over a second to answer
    // /auth/validate, which would turn fallback tests about call counts into 503s. The test of
    // the deadline itself sets its own.
    f.auth.deadline_ms = 5000;
    f.auth.rate_limit_per_sec = 20;
    f.auth.rate_limit_burst = 40;
    f.auth.retry_after_secs = 1;
    f.jwt.leeway_secs = 0;
    f.jwt.refresh_interval_secs = 300;
    f.jwt.unknown_kid_wait_ms = 3000;
    f.jwt.min_refresh_gap_ms = 2000;
    f.revocation.poll_interval_secs = 1;
    f.revocation.max_age_secs = 0;
    f.cache.enabled = true;
    // Many tests send hundreds of requests as one user; the rate-limit tests set their own.
    f.rate_limit.fleet_rate_per_sec = 1_000_000;
    f.rate_limit.burst = 1_000_000;
    f.shutdown.grace_period_secs = 2;
    f.shutdown.graceful_shutdown_timeout_secs = 1;
    // Tests read the lines of the requests they send, successes too; the default share (one
    // success in a hundred) has its own tests (`gateway/tests/it/access_log.rs`).
    f.access_log.successes = 1.0;
    f
}

/// [`test_sidecar`] with `edit` applied, e.g. `sidecar(|f| f.jwt.leeway_secs = 5)`.
pub fn sidecar(edit: impl FnOnce(&mut SidecarFile)) -> SidecarFile {
    let mut f = test_sidecar();
    edit(&mut f);
    f
}

/// Starts the gateway with `sidecar` and `keyring` in front of `upstream`. With `wait_ready`,
/// returns once `/ready` answers 200; otherwise once both ports accept connections.
pub async fn start_gateway(
    sidecar: SidecarFile,
    upstream: SocketAddr,
    auth_url: &str,
    keyring: KeyringSource,
    wait_ready: bool,
) -> RunningService {
    let logging = Logging { format: None, filter: Some("info".into()) };
    start_gateway_logging(sidecar, upstream, auth_url, keyring, wait_ready, logging, &[]).await
}

/// [`start_gateway`] with `logging` (`LOG_FORMAT`, `RUST_LOG`) instead of the parent's format
/// at `info`, and the variables `env` (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`) set.
pub async fn start_gateway_logging(
    sidecar: SidecarFile,
    upstream: SocketAddr,
    auth_url: &str,
    keyring: KeyringSource,
    wait_ready: bool,
    logging: Logging,
    env: &[(&str, &str)],
) -> RunningService {
    let addr = loopback(free_port().unwrap());
    let metrics = loopback(free_port().unwrap());
    let mut settings = launch::GatewaySettings::new(
        sidecar,
        log_dir().join(format!("sidecar-{}.toml", addr.port())),
        addr,
        metrics,
        upstream,
        auth_url,
        keyring,
    );
    settings.logging = logging;
    settings.ready = if wait_ready {
        vec![Probe::http(metrics, "/ready"), Probe::Tcp(addr)]
    } else {
        vec![Probe::Tcp(metrics), Probe::Tcp(addr)]
    };
    let mut launch =
        settings.launch("gateway", &bin("gateway")).unwrap().output(Output::File(log_file("gateway", addr.port())));
    for (key, value) in env {
        launch = launch.env(key, value);
    }
    RunningService::start("gateway", &launch, addr, Some(metrics), Duration::from_secs(30)).await.unwrap()
}

/// The gateway tests' usual processes: one database, auth-svc (`auth_secret`,
/// `auth_previous`), task-svc, and a gateway holding `gateway_secret` only.
pub struct GatewayHarness {
    pub db: TestDatabase,
    pub auth: RunningService,
    pub task: RunningService,
    pub gateway: RunningService,
}

impl GatewayHarness {
    /// Starts them; the gateway's config is [`test_sidecar`] with `edit` applied.
    pub async fn start(
        auth_secret: &str,
        auth_previous: Option<&str>,
        gateway_secret: &str,
        edit: impl FnOnce(&mut SidecarFile),
    ) -> Self {
        let db = TestDatabase::new().await;
        let auth = start_auth(&db.url, auth_secret, auth_previous).await;
        let task = start_task(&db.url).await;
        let gateway =
            start_gateway(sidecar(edit), task.addr, &auth.url(), KeyringSource::secret(gateway_secret), true).await;
        Self { db, auth, task, gateway }
    }
}

/// Registers and logs in a fresh user through `auth`; returns (token, user id).
pub async fn login(auth: &RunningService, name: &str) -> (String, i64) {
    crate::accounts::sign_up(&Http::new(&client(), &auth.url()), name).await
}

/// `service`'s log ([`log_path`]) once `ready(text)` holds, within 10 s; panics naming `what`
/// otherwise. For a test asserting on the lines a process wrote after a request: the processes
/// write each thread's lines in order, so once a later request's line is in, the earlier ones
/// are too.
pub async fn log_once(service: &RunningService, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let log = log_path(service.name, service.addr.port());
    crate::wait::until_some(what, Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let done = ready(&text);
        async move { done.then_some(text) }
    })
    .await
}

/// The text of `service`'s `/metrics`.
pub async fn metrics_text(service: &RunningService) -> String {
    let url = service.metrics_url("/metrics").unwrap_or_else(|| panic!("{} has no metrics listener", service.name));
    client().get(url).send().await.unwrap().text().await.unwrap()
}

/// `service`'s `/metrics`, parsed strictly.
pub async fn scrape(service: &RunningService) -> HashMap<String, f64> {
    samples(&metrics_text(service).await)
}

/// auth-svc's count of `/auth/validate` calls (any status).
pub async fn auth_validate_calls(auth: &RunningService) -> f64 {
    scrape(auth)
        .await
        .iter()
        .filter(|(k, _)| k.starts_with("http_requests_total{") && k.contains(r#"route="/auth/validate""#))
        .map(|(_, v)| v)
        .sum()
}

/// Creates a task titled `title` through `gateway` (asserting 201) and returns it.
pub async fn create_task(gateway: &RunningService, token: &str, title: &str) -> Value {
    let r = client()
        .post(gateway.url_for("/tasks"))
        .bearer_auth(token)
        .json(&json!({"title": title}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["task"].clone()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{log_file, log_path, prune};

    #[test]
    fn pruning_removes_only_the_files_older_than_the_retention() {
        let dir = std::env::temp_dir().join(format!("gateway-tests-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.log"), dir.join("new.log"));
        std::fs::write(&old, "old").unwrap();
        std::fs::write(&new, "new").unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
        prune(&dir, Duration::from_secs(60 * 60));
        assert!(!old.exists(), "a file past the retention is kept");
        assert!(new.exists(), "a fresh file is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_left_on_the_port_is_not_read_as_the_new_process_log() {
        // A port no test listens on: the file is only this test's.
        let path = log_path("stale-log-test", 1);
        std::fs::write(&path, "ERROR from a process that had this port before\n").unwrap();
        assert_eq!(log_file("stale-log-test", 1), path);
        assert!(!path.exists(), "the earlier process's log is still there");
        // No file at all is fine too.
        assert_eq!(log_file("stale-log-test", 1), path);
    }
}
