//! The one launcher of the system's binaries: typed settings per binary produce its command
//! line, environment and config file in one place, and [`Launch`] starts the process and waits
//! until it is ready. The run command ([`crate::stack`]), the bench, the gateway tests and the
//! process tests all start auth-svc, task-svc and the gateway through here, so a new setting is
//! a change to one struct.
//!
//! Settings map to the variables in the README's "Configuration" table and to the gateway's
//! `sidecar.toml` (written from [`gateway::config::SidecarFile`], the schema the gateway reads).
//! A process that is not one of the three is a plain [`Launch::new`] (moto, the bench's
//! helpers) or a settings struct of its own with a `launch` method ([`PrometheusSettings`]).

mod command;
pub mod prometheus;
mod running;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
pub use command::{Env, Launch, Probe};
use gateway::config::SidecarFile;
use platform::Secret;
pub use prometheus::{Job, PrometheusSettings, ScrapeTarget};
pub use running::RunningService;

/// The command that builds every binary the launcher starts, with the workspace's single
/// feature resolution (see docs/local-run.md, "One build").
pub const BUILD_COMMAND: &str = "cargo build --workspace --bins";

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The directory holding auth-svc, task-svc and gateway (one build profile's output).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$TASKMGMT_BIN_DIR`, else the running executable's directory ([`crate::process::bin_dir`]).
    pub fn locate() -> Result<Self> {
        Ok(Self::new(crate::process::bin_dir()?))
    }

    /// The path of binary `name`; an error saying how to build it when it is missing.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.exists() {
            bail!(
                "{name} not found in {}: build the binaries first with `{BUILD_COMMAND}` (add --release for a release run)",
                self.dir.display()
            );
        }
        Ok(path)
    }
}

/// `LOG_FORMAT` and `RUST_LOG` of a child. `None` leaves the variable as the parent has it
/// (the run command passes the user's choice through).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logging {
    pub format: Option<LogFormat>,
    /// `RUST_LOG`, e.g. `info`.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Compact,
    /// JSON lines, as on ECS (CloudWatch).
    Json,
}

impl Logging {
    /// JSON lines, as the ECS task definitions set.
    pub fn json() -> Self {
        Self { format: Some(LogFormat::Json), filter: None }
    }
}

/// A Secrets Manager endpoint other than AWS's (moto in the tests): the standard
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` plus static test credentials, and no instance metadata
/// or shared config files, so nothing outside the test is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEndpoint {
    pub secrets_manager_url: String,
    pub region: String,
}

impl AwsEndpoint {
    /// moto (or any stand-in) at `url`, region `us-east-1`.
    pub fn stand_in(url: impl Into<String>) -> Self {
        Self { secrets_manager_url: url.into(), region: "us-east-1".into() }
    }

    fn env(&self, env: &mut Env) {
        env.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", &self.secrets_manager_url);
        env.set("AWS_REGION", &self.region);
        env.set("AWS_ACCESS_KEY_ID", "testing");
        env.set("AWS_SECRET_ACCESS_KEY", "testing");
        env.set("AWS_EC2_METADATA_DISABLED", "true");
        env.set("AWS_CONFIG_FILE", "/nonexistent");
        env.set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    }
}

/// Where a binary's JWT keyring comes from (auth-svc and gateway read the same variables).
#[derive(Clone, PartialEq, Eq)]
pub enum KeyringSource {
    /// `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`): fixed for the life of the process.
    Secret { current: Secret, previous: Option<Secret> },
    /// `JWT_SECRET_ARN`: AWSCURRENT and AWSPREVIOUS from Secrets Manager at `endpoint`.
    SecretsManager { arn: String, endpoint: AwsEndpoint },
}

impl fmt::Debug for KeyringSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringSource::Secret { previous, .. } => f
                .debug_struct("Secret")
                .field("current", &"[redacted]")
                .field("previous", &previous.as_ref().map(|_| "[redacted]"))
                .finish(),
            KeyringSource::SecretsManager { arn, endpoint } => {
                f.debug_struct("SecretsManager").field("arn", arn).field("endpoint", endpoint).finish()
            }
        }
    }
}

impl KeyringSource {
    /// One fixed secret (`JWT_SECRET`).
    pub fn secret(current: &str) -> Self {
        KeyringSource::Secret { current: Secret::new(current), previous: None }
    }

    /// A secret and the previous one during a rotation (`JWT_SECRET_PREVIOUS`, verify only).
    pub fn rotating(current: &str, previous: Option<&str>) -> Self {
        KeyringSource::Secret { current: Secret::new(current), previous: previous.map(Secret::new) }
    }

    fn env(&self, env: &mut Env) {
        match self {
            KeyringSource::Secret { current, previous } => {
                env.set("JWT_SECRET", current.expose());
                match previous {
                    Some(p) => env.set("JWT_SECRET_PREVIOUS", p.expose()),
                    None => env.unset("JWT_SECRET_PREVIOUS"),
                }
                env.unset("JWT_SECRET_ARN");
            }
            KeyringSource::SecretsManager { arn, endpoint } => {
                env.set("JWT_SECRET_ARN", arn);
                env.unset("JWT_SECRET");
                env.unset("JWT_SECRET_PREVIOUS");
                endpoint.env(env);
            }
        }
    }
}

/// What auth-svc and task-svc share (README, "Configuration").
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `DATABASE_URL` (may hold a password: never printed).
    pub database_url: String,
    /// `BIND_ADDR` and `PORT`.
    pub listen: SocketAddr,
    /// `METRICS_ADDR`; `None` is `off`.
    pub metrics: Option<SocketAddr>,
    /// `SHUTDOWN_GRACE_SECS`; `None` keeps the service's default (20 s).
    pub shutdown_grace_secs: Option<u64>,
    /// `DB_ACQUIRE_TIMEOUT_SECS`; `None` keeps the default (3 s).
    pub db_acquire_timeout_secs: Option<u64>,
    /// `DB_MAX_CONNECTIONS` (pool size); `None` keeps the default (10).
    pub db_max_connections: Option<u32>,
}

impl fmt::Debug for ServiceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceSettings")
            .field("database_url", &"[redacted]")
            .field("listen", &self.listen)
            .field("metrics", &self.metrics)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("db_acquire_timeout_secs", &self.db_acquire_timeout_secs)
            .field("db_max_connections", &self.db_max_connections)
            .finish()
    }
}

impl ServiceSettings {
    /// `database_url`, listening on `listen`, no metrics listener, the services' defaults.
    pub fn new(database_url: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            database_url: database_url.into(),
            listen,
            metrics: None,
            shutdown_grace_secs: None,
            db_acquire_timeout_secs: None,
            db_max_connections: None,
        }
    }

    fn env(&self, env: &mut Env) {
        env.set("DATABASE_URL", &self.database_url);
        env.set("BIND_ADDR", &self.listen.ip().to_string());
        env.set("PORT", &self.listen.port().to_string());
        env.set("METRICS_ADDR", &self.metrics.map_or_else(|| "off".to_owned(), |m| m.to_string()));
        env.set_or_unset("SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs);
        env.set_or_unset("DB_ACQUIRE_TIMEOUT_SECS", self.db_acquire_timeout_secs);
        env.set_or_unset("DB_MAX_CONNECTIONS", self.db_max_connections);
    }
}

/// The per-address limit of auth-svc's hashing endpoints (`CLIENT_RATE_PER_MIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRate {
    /// `off`: no per-address limit (load generators on one machine).
    Off,
    /// Requests a minute per source address.
    PerMinute(u32),
}

/// auth-svc's login and registration throttles (README, "Throttling"); `None` keeps auth-svc's
/// default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttles {
    /// `CLIENT_RATE_PER_MIN`.
    pub client_rate: Option<ClientRate>,
    /// `CLIENT_BURST`.
    pub client_burst: Option<u32>,
    /// `LOGIN_FAILURE_LIMIT`.
    pub login_failure_limit: Option<u32>,
    /// `LOGIN_FAILURE_WINDOW_SECS`.
    pub login_failure_window_secs: Option<u64>,
}

impl Throttles {
    /// No per-address limit and a per-account limit nobody reaches: for load generators, which
    /// send every login from one address.
    pub fn off() -> Self {
        Self { client_rate: Some(ClientRate::Off), login_failure_limit: Some(1_000_000), ..Self::default() }
    }

    fn env(&self, env: &mut Env) {
        let rate = self.client_rate.map(|r| match r {
            ClientRate::Off => "off".to_owned(),
            ClientRate::PerMinute(n) => n.to_string(),
        });
        env.set_or_unset("CLIENT_RATE_PER_MIN", rate);
        env.set_or_unset("CLIENT_BURST", self.client_burst);
        env.set_or_unset("LOGIN_FAILURE_LIMIT", self.login_failure_limit);
        env.set_or_unset("LOGIN_FAILURE_WINDOW_SECS", self.login_failure_window_secs);
    }
}

/// auth-svc: users, passwords and token issuing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSvcSettings {
    pub service: ServiceSettings,
    pub keyring: KeyringSource,
    /// `JWT_KEYRING_REFRESH_SECS` (Secrets Manager keyring); `None` keeps the default (60 s).
    pub keyring_refresh_secs: Option<u64>,
    pub throttles: Throttles,
    /// `HASH_CONCURRENCY` (argon2 threads); `None` keeps the default (the CPU count).
    pub hash_concurrency: Option<usize>,
    /// `HASH_QUEUE_TIMEOUT_MS` (wait for a hashing slot before 503); `None` keeps the default (2 s).
    pub hash_queue_timeout_ms: Option<u64>,
    pub logging: Logging,
}

impl AuthSvcSettings {
    pub fn new(service: ServiceSettings, keyring: KeyringSource) -> Self {
        Self {
            service,
            keyring,
            keyring_refresh_secs: None,
            throttles: Throttles::default(),
            hash_concurrency: None,
            hash_queue_timeout_ms: None,
            logging: Logging::default(),
        }
    }

    /// The process, ready once `GET /auth/health` answers 200.
    pub fn launch(&self, name: &str, program: &Path) -> Launch {
        let mut env = Env::default();
        self.service.env(&mut env);
        self.keyring.env(&mut env);
        env.set_or_unset("JWT_KEYRING_REFRESH_SECS", self.keyring_refresh_secs);
        env.set_or_unset("HASH_CONCURRENCY", self.hash_concurrency);
        env.set_or_unset("HASH_QUEUE_TIMEOUT_MS", self.hash_queue_timeout_ms);
        self.throttles.env(&mut env);
        Launch::new(name, program)
            .with_env(env)
            .logging(&self.logging)
            .ready(vec![Probe::http(self.service.listen, "/auth/health")])
    }
}

/// task-svc: the task CRUD behind its gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSvcSettings {
    pub service: ServiceSettings,
    /// `UNIX_SOCKET_PATH`: also serve on this Unix domain socket (for a gateway with
    /// `[upstream] socket`); `None` is TCP only.
    pub unix_socket: Option<PathBuf>,
    pub logging: Logging,
}

impl TaskSvcSettings {
    pub fn new(service: ServiceSettings) -> Self {
        Self { service, unix_socket: None, logging: Logging::default() }
    }

    /// The process, ready once `GET /tasks/health` answers 200.
    pub fn launch(&self, name: &str, program: &Path) -> Launch {
        let mut env = Env::default();
        self.service.env(&mut env);
        env.set_or_unset("UNIX_SOCKET_PATH", self.unix_socket.as_ref().map(|p| p.display()));
        Launch::new(name, program)
            .with_env(env)
            .logging(&self.logging)
            .ready(vec![Probe::http(self.service.listen, "/tasks/health")])
    }
}

/// The gateway sidecar: `sidecar.toml` (written to `config_path` from `sidecar`) plus the
/// per-task environment overrides ECS sets (`GATEWAY_LISTEN`, `UPSTREAM_ADDR`, `METRICS_ADDR`,
/// `AUTH_SERVICE_URL`, the keyring).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    pub sidecar: SidecarFile,
    /// Where the config file is written.
    pub config_path: PathBuf,
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    /// task-svc.
    pub upstream: SocketAddr,
    /// task-svc's metrics listener, passed through at `/metrics/task-svc` (`UPSTREAM_METRICS_ADDR`;
    /// `None` is `off`).
    pub upstream_metrics: Option<SocketAddr>,
    /// auth-svc for the fallback, e.g. `http://localhost:3000`.
    pub auth_url: String,
    pub keyring: KeyringSource,
    pub logging: Logging,
    /// What counts as ready: by default the keyring is loaded and the revocation list pulled
    /// (`/ready`), and a request reaches task-svc (`/tasks/health`).
    pub ready: Vec<Probe>,
}

impl GatewaySettings {
    pub fn new(
        sidecar: SidecarFile,
        config_path: PathBuf,
        listen: SocketAddr,
        metrics: SocketAddr,
        upstream: SocketAddr,
        auth_url: impl Into<String>,
        keyring: KeyringSource,
    ) -> Self {
        Self {
            sidecar,
            config_path,
            listen,
            metrics,
            upstream,
            upstream_metrics: None,
            auth_url: auth_url.into(),
            keyring,
            logging: Logging::default(),
            ready: vec![Probe::http(metrics, "/ready"), Probe::http(listen, "/tasks/health")],
        }
    }

    /// The grace and final timeout of its `[shutdown]`: how long a SIGTERM may take.
    pub fn stop_timeout(&self) -> Duration {
        let s = &self.sidecar.shutdown;
        Duration::from_secs(s.grace_period_secs + s.graceful_shutdown_timeout_secs)
    }

    /// Writes the config file and returns the process.
    pub fn launch(&self, name: &str, program: &Path) -> Result<Launch> {
        let text = self.sidecar.to_toml().map_err(anyhow::Error::msg).context("serialising sidecar.toml")?;
        let header = "# Written by devstack::launch from gateway::config::SidecarFile; see the repository's sidecar.toml for what each key means.\n";
        std::fs::write(&self.config_path, format!("{header}{text}"))
            .with_context(|| format!("could not write {}", self.config_path.display()))?;
        let mut env = Env::default();
        env.set("GATEWAY_LISTEN", &self.listen.to_string());
        env.set("UPSTREAM_ADDR", &self.upstream.to_string());
        env.set("UPSTREAM_METRICS_ADDR", &self.upstream_metrics.map_or_else(|| "off".to_owned(), |m| m.to_string()));
        env.set("METRICS_ADDR", &self.metrics.to_string());
        env.set("AUTH_SERVICE_URL", &self.auth_url);
        self.keyring.env(&mut env);
        Ok(Launch::new(name, program)
            .arg("--config")
            .arg(self.config_path.display().to_string())
            .with_env(env)
            .logging(&self.logging)
            .ready(self.ready.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_produce_the_documented_variables() {
        let mut service = ServiceSettings::new("postgres://u:pw@h/db", loopback(3000));
        service.shutdown_grace_secs = Some(2);
        let launch = AuthSvcSettings::new(service, KeyringSource::rotating("new-secret", Some("old-secret")))
            .launch("auth-1", Path::new("/bin/auth-svc"));
        let env = &launch.env;
        assert_eq!(env.get("DATABASE_URL"), Some("postgres://u:pw@h/db"));
        assert_eq!((env.get("BIND_ADDR"), env.get("PORT")), (Some("127.0.0.1"), Some("3000")));
        assert_eq!(env.get("METRICS_ADDR"), Some("off"));
        assert_eq!(env.get("SHUTDOWN_GRACE_SECS"), Some("2"));
        assert_eq!(env.get("JWT_SECRET_PREVIOUS"), Some("old-secret"));
        assert!(env.unset.contains(&"JWT_SECRET_ARN".to_owned()), "a stray parent value cannot leak in");
        assert!(env.unset.contains(&"DB_ACQUIRE_TIMEOUT_SECS".to_owned()));
        assert!(env.unset.contains(&"CLIENT_RATE_PER_MIN".to_owned()), "auth-svc's default throttles");
        let mut quiet =
            AuthSvcSettings::new(ServiceSettings::new("postgres://h/db", loopback(1)), KeyringSource::secret("k"));
        quiet.throttles = Throttles::off();
        let quiet = quiet.launch("auth", Path::new("auth-svc"));
        assert_eq!(quiet.env.get("CLIENT_RATE_PER_MIN"), Some("off"));
        assert_eq!(quiet.env.get("LOGIN_FAILURE_LIMIT"), Some("1000000"));
        assert_eq!(launch.ready, vec![Probe::http(loopback(3000), "/auth/health")]);
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let launch = AuthSvcSettings::new(
            ServiceSettings::new("postgres://u:hunter2@h/db", loopback(1)),
            KeyringSource::rotating("s3cr3t-current", Some("s3cr3t-previous")),
        )
        .launch("auth", Path::new("auth-svc"));
        let text = format!("{launch:?}");
        for secret in ["hunter2", "s3cr3t"] {
            assert!(!text.contains(secret), "{text}");
        }
        let keyring = KeyringSource::rotating("s3cr3t-current", None);
        assert!(!format!("{keyring:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_gateway_config_is_written_through_the_schema() {
        let dir = std::env::temp_dir().join(format!("launch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let mut sidecar = SidecarFile::default();
        sidecar.cache.enabled = false;
        sidecar.shutdown.grace_period_secs = 1;
        let gw = GatewaySettings::new(
            sidecar.clone(),
            dir.join("sidecar.toml"),
            loopback(1),
            loopback(2),
            loopback(3),
            "http://localhost:4",
            KeyringSource::secret("k"),
        );
        let launch = gw.launch("gateway-1", Path::new("gateway"));
        assert!(launch.is_ok(), "{launch:?}");
        let read = SidecarFile::read(&dir.join("sidecar.toml"));
        assert_eq!(read.ok(), Some(sidecar));
        assert_eq!(gw.stop_timeout(), Duration::from_secs(1 + 5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
