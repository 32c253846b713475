//! The stack the gateway tests run: real PostgreSQL, the real auth-svc, task-svc and gateway
//! binaries on loopback ports picked at run time, and moto for Secrets Manager.
#![allow(dead_code, clippy::unwrap_used)]

pub mod moto;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use devstack::launch::{self, AuthSvc, Binaries, KeyringSource, Probe, ServiceSettings, TaskSvc, loopback};
use devstack::postgres::free_port;
use devstack::postgres::testing::TestDatabase;
use devstack::process::{Output, Process};
use gateway::config::SidecarFile;
use platform::Secret;
use platform::keyring::{Claims, Keyring};
use serde_json::{Value, json};

pub const OLD_SECRET: &str = "old-secret-0123456789abcdef0123456789abcdef";
pub const NEW_SECRET: &str = "new-secret-0123456789abcdef0123456789abcdef";

/// A binary of the workspace, with a clear message when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    Binaries::locate()
        .and_then(|b| b.path(name))
        .unwrap_or_else(|e| panic!("{e:#} (the gateway tests start the real binaries)"))
}

pub fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("gateway-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn log_file(name: &str, port: u16) -> Output {
    let path = log_dir().join(format!("{name}-{port}.log"));
    eprintln!("{name} log: {}", path.display());
    Output::File(path)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub struct Service {
    pub process: Process,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The services' settings the gateway tests use: their own ports, a short shutdown grace.
fn service(db_url: &str) -> ServiceSettings {
    ServiceSettings {
        metrics: Some(loopback(free_port().unwrap())),
        shutdown_grace_secs: Some(2),
        ..ServiceSettings::new(db_url, loopback(free_port().unwrap()))
    }
}

pub async fn start_auth(db_url: &str, secret: &str, previous: Option<&str>) -> Service {
    let settings = AuthSvc::new(service(db_url), KeyringSource::rotating(secret, previous));
    let (addr, metrics) = (settings.service.listen, settings.service.metrics.unwrap());
    let launch = settings.launch("auth-svc", &bin("auth-svc")).output(log_file("auth-svc", addr.port()));
    let process = launch.start(Duration::from_secs(60)).await.unwrap();
    Service { process, addr, metrics }
}

pub async fn start_task(db_url: &str) -> Service {
    let settings = TaskSvc::new(service(db_url));
    let (addr, metrics) = (settings.service.listen, settings.service.metrics.unwrap());
    let launch = settings.launch("task-svc", &bin("task-svc")).output(log_file("task-svc", addr.port()));
    let process = launch.start(Duration::from_secs(60)).await.unwrap();
    Service { process, addr, metrics }
}

/// The sidecar.toml keys the tests vary; [`GatewayToml::sidecar`] builds the whole file. The
/// public routes are the gateway's defaults (the repository's sidecar.toml states them).
#[derive(Clone)]
pub struct GatewayToml {
    pub leeway_secs: u64,
    pub grace_period_secs: u64,
    pub graceful_shutdown_timeout_secs: u64,
    pub read_timeout_ms: u64,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub refresh_interval_secs: u64,
    pub deadline_ms: u64,
    pub cache_enabled: bool,
    pub unknown_kid_wait_ms: u64,
    pub min_refresh_gap_ms: u64,
    pub revocation_poll_interval_secs: u64,
    pub revocation_max_age_secs: u64,
}

impl Default for GatewayToml {
    fn default() -> Self {
        Self {
            leeway_secs: 0,
            grace_period_secs: 2,
            graceful_shutdown_timeout_secs: 1,
            read_timeout_ms: 10_000,
            rate_limit_per_sec: 20,
            rate_limit_burst: 40,
            refresh_interval_secs: 300,
            deadline_ms: 1000,
            cache_enabled: true,
            unknown_kid_wait_ms: 3000,
            min_refresh_gap_ms: 2000,
            revocation_poll_interval_secs: 1,
            revocation_max_age_secs: 0,
        }
    }
}

impl GatewayToml {
    /// The gateway's config schema with the tests' values: two proxy threads, quick
    /// re-resolution and retries, and the keys above.
    pub fn sidecar(&self) -> SidecarFile {
        let mut f = SidecarFile::default();
        f.server.threads = 2;
        f.upstream.read_timeout_ms = self.read_timeout_ms;
        f.upstream.write_timeout_ms = 5000;
        f.upstream.connect_timeout_ms = 500;
        f.auth.resolve_interval_secs = 1;
        f.auth.deadline_ms = self.deadline_ms;
        f.auth.rate_limit_per_sec = self.rate_limit_per_sec;
        f.auth.rate_limit_burst = self.rate_limit_burst;
        f.auth.retry_after_secs = 1;
        f.jwt.leeway_secs = self.leeway_secs;
        f.jwt.refresh_interval_secs = self.refresh_interval_secs;
        f.jwt.unknown_kid_wait_ms = self.unknown_kid_wait_ms;
        f.jwt.min_refresh_gap_ms = self.min_refresh_gap_ms;
        f.revocation.poll_interval_secs = self.revocation_poll_interval_secs;
        f.revocation.max_age_secs = self.revocation_max_age_secs;
        f.cache.enabled = self.cache_enabled;
        f.shutdown.grace_period_secs = self.grace_period_secs;
        f.shutdown.graceful_shutdown_timeout_secs = self.graceful_shutdown_timeout_secs;
        f
    }
}

pub struct Gateway {
    pub process: Process,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics)).await.unwrap().text().await.unwrap()
    }
}

/// Starts the gateway with `keyring`. With `wait_ready`, returns once `/ready` answers 200;
/// otherwise once both ports accept connections.
pub async fn start_gateway(
    toml: &GatewayToml,
    upstream: SocketAddr,
    auth_url: &str,
    keyring: KeyringSource,
    wait_ready: bool,
) -> Gateway {
    let addr = loopback(free_port().unwrap());
    let metrics = loopback(free_port().unwrap());
    let mut settings = launch::Gateway::new(
        toml.sidecar(),
        log_dir().join(format!("sidecar-{}.toml", addr.port())),
        addr,
        metrics,
        upstream,
        auth_url,
        keyring,
    );
    settings.logging.filter = Some("info".into());
    settings.ready = if wait_ready {
        vec![Probe::http(metrics, "/ready"), Probe::Tcp(addr)]
    } else {
        vec![Probe::Tcp(metrics), Probe::Tcp(addr)]
    };
    let launch = settings.launch("gateway", &bin("gateway")).unwrap().output(log_file("gateway", addr.port()));
    let process = launch.start(Duration::from_secs(30)).await.unwrap();
    Gateway { process, addr, metrics }
}

/// The usual stack: one database, auth-svc (`auth_secret`, `auth_previous`), task-svc, and a
/// gateway holding `gateway_secret` only.
pub struct Stack {
    pub db: TestDatabase,
    pub auth: Service,
    pub task: Service,
    pub gateway: Gateway,
}

impl Stack {
    pub async fn start(
        auth_secret: &str,
        auth_previous: Option<&str>,
        gateway_secret: &str,
        toml: &GatewayToml,
    ) -> Self {
        let db = TestDatabase::new().await;
        let auth = start_auth(&db.url, auth_secret, auth_previous).await;
        let task = start_task(&db.url).await;
        let gateway = start_gateway(
            toml,
            task.addr,
            &format!("http://{}", auth.addr),
            KeyringSource::secret(gateway_secret),
            true,
        )
        .await;
        Self { db, auth, task, gateway }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Registers and logs in a fresh user through auth-svc; returns (token, user id).
pub async fn login(auth: &Service, name: &str) -> (String, i64) {
    let c = client();
    let username = format!("{name}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = "correct-horse-battery";
    let r = c
        .post(auth.url("/auth/register"))
        .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = c
        .post(auth.url("/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (body["token"].as_str().unwrap().to_owned(), body["user"]["id"].as_i64().unwrap())
}

/// A token signed with `secret` for `user_id`, living `lifetime` seconds from now.
pub fn mint(secret: &str, user_id: i64, lifetime: i64) -> String {
    let ring = Keyring::new(&Secret::new(secret), None).unwrap();
    ring.issue(&Claims::new(user_id, &format!("user{user_id}"), "minted@example.com", unix_now(), lifetime)).unwrap()
}

/// Parses a Prometheus text exposition strictly ([`devstack::exposition::parse`]); a broken
/// one fails the test with the bad line.
pub fn parse_exposition(text: &str) -> HashMap<String, f64> {
    devstack::exposition::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// A sample's value, 0 when absent (a counter vec has no series until first used).
pub fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// auth-svc's count of `/auth/validate` calls (any status).
pub async fn auth_validate_calls(auth: &Service) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", auth.metrics)).await.unwrap().text().await.unwrap();
    parse_exposition(&text)
        .iter()
        .filter(|(k, _)| k.starts_with("http_requests_total{") && k.contains(r#"route="/auth/validate""#))
        .map(|(_, v)| v)
        .sum()
}

pub async fn create_task(gateway: &Gateway, token: &str, title: &str) -> Value {
    let r =
        client().post(gateway.url("/tasks")).bearer_auth(token).json(&json!({"title": title})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["task"].clone()
}
