//! auth-svc's and task-svc's settings: what they share ([`ServiceSettings`]), auth-svc's
//! throttles ([`Throttles`]), and one settings struct per binary.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{Env, KeyringSource, Launch, Logging, Probe};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::loopback;

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
        for key in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"] {
            let untouched = env.get(key).is_none() && !env.unset.iter().any(|k| k == key);
            assert!(untouched, "the user's {key} reaches the services as set (docs/observability.md)");
        }
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
}
