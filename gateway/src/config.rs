//! The gateway's configuration: `sidecar.toml` (every table `deny_unknown_fields`, every key
//! optional with a default) plus the environment overrides ECS and local runs set per task.
//! Errors name the offending key and never echo a secret.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use platform::config::{ConfigError, Source, raw};
use platform::keyring::{KeyringConfig, TokenRules};
use serde::{Deserialize, Serialize};

/// The file as written. Durations are whole seconds or milliseconds, as the key name says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SidecarFile {
    pub server: ServerSection,
    pub upstream: UpstreamSection,
    pub auth: AuthSection,
    pub jwt: JwtSection,
    pub cache: CacheSection,
    pub shutdown: ShutdownSection,
    pub routes: RoutesSection,
    pub revocation: RevocationSection,
}

impl SidecarFile {
    /// Parses `sidecar.toml` text. The error names the unknown or mistyped key and its line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        parse_file(text)
    }

    /// Reads and parses the file at `path`; the error names the path and the key.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let key = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&key, format!("cannot read config file: {e}")))?;
        parse_file(&text).map_err(|e| ConfigError::new(&key, e))
    }

    /// The file as TOML text, every key written out (what the launchers write for a run).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Sets one key, `table.key`, to `value` (TOML syntax, e.g. `1`, `false`, `"x"`), checked
    /// against the schema: an unknown key or a mistyped value is an error naming the key.
    pub fn set(&mut self, dotted_key: &str, value: &str) -> Result<(), String> {
        let (table, key) =
            dotted_key.split_once('.').ok_or_else(|| format!("{dotted_key}: want table.key, e.g. cache.enabled"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| format!("{dotted_key}: {value} is not a TOML value"))?;
        let mut doc = match toml::Value::try_from(&*self).map_err(|e| e.to_string())? {
            toml::Value::Table(t) => t,
            _ => return Err("the config is not a table".into()),
        };
        doc.entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{table} is not a table"))?
            .insert(key.to_owned(), value);
        *self = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| format!("{dotted_key}: {}", e.message().trim()))?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub metrics: String,
    /// Worker threads of the proxy service; 0 means one per CPU.
    pub threads: usize,
    /// How long an idle downstream (ALB) keep-alive connection is kept open between requests.
    /// Must exceed the ALB's `idle_timeout.timeout_seconds` (60): the ALB, not the gateway, has
    /// to be the side that closes an idle connection, or it may reuse one the gateway is closing
    /// and answer 502 (AWS: "configure the idle timeout of your application to be larger than
    /// the idle timeout configured for the load balancer").
    pub keepalive_timeout_secs: u64,
}

/// Default downstream keep-alive timeout: above the ALB's default idle timeout of 60 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT_SECS: u64 = 75;

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:3000".into(),
            metrics: "0.0.0.0:9100".into(),
            threads: 0,
            keepalive_timeout_secs: DEFAULT_KEEPALIVE_TIMEOUT_SECS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    pub addr: String,
    /// task-svc's Unix domain socket (its `UNIX_SOCKET_PATH`, on ECS a volume both containers
    /// mount). When set, requests go there instead of `addr`; empty (the default) is TCP.
    /// Not written out when empty, so configs written for older gateways stay readable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub socket: String,
    /// task-svc's own metrics listener (loopback), passed through as `/metrics/task-svc` on the
    /// gateway's metrics port; `off` disables the pass-through.
    pub metrics: String,
    pub connect_timeout_ms: u64,
    pub total_connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub idle_timeout_secs: u64,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3001".into(),
            socket: String::new(),
            metrics: "127.0.0.1:9102".into(),
            connect_timeout_ms: 1000,
            total_connect_timeout_ms: 2000,
            read_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            idle_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub url: String,
    pub resolve_interval_secs: u64,
    pub deadline_ms: u64,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub retry_after_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            url: "http://auth-service.task-management.local:3000".into(),
            resolve_interval_secs: 5,
            deadline_ms: 1500,
            rate_limit_per_sec: 20,
            rate_limit_burst: 40,
            retry_after_secs: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSection {
    pub leeway_secs: u64,
    /// Largest `exp - iat` accepted, seconds.
    pub max_lifetime_secs: u64,
    pub refresh_interval_secs: u64,
    /// Smallest gap between two Secrets Manager reads, ms (early refreshes coalesce).
    pub min_refresh_gap_ms: u64,
    /// How long a request with an unknown key id waits for the keyring refresh it triggered, ms.
    pub unknown_kid_wait_ms: u64,
}

impl Default for JwtSection {
    fn default() -> Self {
        Self {
            leeway_secs: platform::keyring::DEFAULT_LEEWAY_SECS,
            max_lifetime_secs: platform::keyring::DEFAULT_MAX_LIFETIME_SECS,
            refresh_interval_secs: 300,
            min_refresh_gap_ms: 2000,
            unknown_kid_wait_ms: 3000,
        }
    }
}

/// `[revocation]`: the list of revoked tokens pulled from auth-svc.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationSection {
    /// Seconds between two pulls of `GET /internal/revocations`.
    pub poll_interval_secs: u64,
    /// When the last successful pull is older than this, tokens are answered 503 (fail closed)
    /// because revocation cannot be checked; 0 = never (keep serving with the last list).
    pub max_age_secs: u64,
}

impl Default for RevocationSection {
    fn default() -> Self {
        Self { poll_interval_secs: 2, max_age_secs: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub enabled: bool,
    pub capacity: u64,
    pub max_ttl_secs: u64,
    pub negative_ttl_secs: u64,
    pub unknown_kid_ttl_secs: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self { enabled: true, capacity: 100_000, max_ttl_secs: 300, negative_ttl_secs: 5, unknown_kid_ttl_secs: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSection {
    pub grace_period_secs: u64,
    pub graceful_shutdown_timeout_secs: u64,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self { grace_period_secs: 15, graceful_shutdown_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesSection {
    pub public: Vec<String>,
}

/// Paths forwarded without a token by default: the ALB health check, and the API document
/// (clients and code generators fetch it before they hold a token, like `/auth/openapi.json`).
pub const DEFAULT_PUBLIC_ROUTES: [&str; 2] = ["/tasks/health", "/tasks/openapi.json"];

impl Default for RoutesSection {
    fn default() -> Self {
        Self { public: DEFAULT_PUBLIC_ROUTES.map(String::from).to_vec() }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub threads: usize,
    /// Idle downstream keep-alive timeout in whole seconds (pingora's unit).
    pub keepalive_timeout_secs: u64,
    pub upstream: SocketAddr,
    /// task-svc's Unix domain socket; when set it is used instead of `upstream` for requests.
    pub upstream_socket: Option<std::path::PathBuf>,
    /// task-svc's metrics listener; `None` when the pass-through is off.
    pub upstream_metrics: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub total_connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub auth_url: String,
    pub auth_host: String,
    pub auth_port: u16,
    pub resolve_interval: Duration,
    pub fallback_deadline: Duration,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub retry_after_secs: u64,
    /// Leeway and maximum lifetime (`[jwt] leeway_secs`, `max_lifetime_secs`).
    pub rules: TokenRules,
    pub keyring_refresh_interval: Duration,
    pub keyring_min_refresh_gap: Duration,
    pub unknown_kid_wait: Duration,
    pub keyring: KeyringConfig,
    pub revocation_poll_interval: Duration,
    /// `None`: never fail closed on an old revocation list.
    pub revocation_max_age: Option<Duration>,
    /// `None` disables the verified-token cache (benchmarks).
    pub cache_capacity: Option<u64>,
    pub cache_max_ttl: Duration,
    pub negative_ttl: Duration,
    pub unknown_kid_ttl: Duration,
    pub grace_period_secs: u64,
    pub graceful_shutdown_timeout_secs: u64,
    pub public_routes: Vec<String>,
}

/// The config path: `--config PATH` / `--config=PATH`, else `SIDECAR_CONFIG`, else `sidecar.toml`;
/// and whether it was named explicitly (then a missing file is an error).
pub fn config_path(args: &[String], env: &dyn Source) -> (String, bool) {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            if let Some(p) = it.next() {
                return (p.clone(), true);
            }
        } else if let Some(p) = a.strip_prefix("--config=") {
            return (p.to_owned(), true);
        }
    }
    match raw(env, "SIDECAR_CONFIG") {
        Some(p) => (p, true),
        None => ("sidecar.toml".to_owned(), false),
    }
}

impl Config {
    /// Reads `path` (a missing file at the default path means "all defaults"; a missing file
    /// that was named explicitly is an error) and applies the environment.
    pub fn load(path: &str, explicit: bool, env: &dyn Source) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(Path::new(path)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(ConfigError::new(path, format!("cannot read config file: {e}"))),
        };
        let file = parse_file(&text).map_err(|e| ConfigError::new(path, e))?;
        Self::from_file(file, env)
    }

    pub fn from_file(f: SidecarFile, env: &dyn Source) -> Result<Self, ConfigError> {
        let listen = addr(env, "GATEWAY_LISTEN", "server.listen", &f.server.listen)?;
        let metrics = addr(env, "METRICS_ADDR", "server.metrics", &f.server.metrics)?;
        let upstream = addr(env, "UPSTREAM_ADDR", "upstream.addr", &f.upstream.addr)?;
        let upstream_socket = unix_socket(env, "UPSTREAM_SOCKET", "upstream.socket", &f.upstream.socket)?;
        let upstream_metrics = addr_or_off(env, "UPSTREAM_METRICS_ADDR", "upstream.metrics", &f.upstream.metrics)?;
        let (auth_url, auth_key) = match raw(env, "AUTH_SERVICE_URL") {
            Some(v) => (v.trim().trim_end_matches('/').to_owned(), "AUTH_SERVICE_URL"),
            None => (f.auth.url.trim_end_matches('/').to_owned(), "auth.url"),
        };
        let (auth_host, auth_port) = parse_http_url(&auth_url).map_err(|e| ConfigError::new(auth_key, e))?;

        let keyring = KeyringConfig::from_source(env)?;

        let ms = |key: &str, v: u64, range: std::ops::RangeInclusive<u64>| -> Result<Duration, ConfigError> {
            in_range(key, v, range).map(Duration::from_millis)
        };
        let secs = |key: &str, v: u64, range: std::ops::RangeInclusive<u64>| -> Result<Duration, ConfigError> {
            in_range(key, v, range).map(Duration::from_secs)
        };
        let c = &f.cache;
        let cache_capacity = (c.enabled && c.capacity > 0).then_some(c.capacity);
        let grace = in_range("shutdown.grace_period_secs", f.shutdown.grace_period_secs, 0..=100)?;
        let final_timeout =
            in_range("shutdown.graceful_shutdown_timeout_secs", f.shutdown.graceful_shutdown_timeout_secs, 1..=100)?;
        if grace + final_timeout > 110 {
            return Err(ConfigError::new(
                "shutdown.grace_period_secs",
                "grace_period_secs + graceful_shutdown_timeout_secs must stay below ECS stopTimeout (at most 110 s)",
            ));
        }
        let public_routes = f.routes.public.clone();
        if let Some(bad) = public_routes.iter().find(|r| !r.starts_with('/')) {
            return Err(ConfigError::new("routes.public", format!("route {bad:?} must start with '/'")));
        }
        if f.revocation.max_age_secs != 0 && f.revocation.max_age_secs <= f.revocation.poll_interval_secs {
            return Err(ConfigError::new(
                "revocation.max_age_secs",
                "must be 0 (off) or longer than revocation.poll_interval_secs, or every request fails closed",
            ));
        }
        if f.auth.rate_limit_per_sec == 0 || f.auth.rate_limit_burst == 0 {
            return Err(ConfigError::new("auth.rate_limit_per_sec", "rate limit and burst must be at least 1"));
        }
        Ok(Self {
            listen,
            metrics,
            threads: if f.server.threads == 0 {
                std::thread::available_parallelism().map_or(1, usize::from)
            } else {
                f.server.threads
            },
            // ALB idle timeouts range 1..=4000 s; the gateway's must be able to exceed any of them.
            keepalive_timeout_secs: in_range(
                "server.keepalive_timeout_secs",
                f.server.keepalive_timeout_secs,
                1..=4001,
            )?,
            upstream,
            upstream_socket,
            upstream_metrics,
            connect_timeout: ms("upstream.connect_timeout_ms", f.upstream.connect_timeout_ms, 1..=60_000)?,
            total_connect_timeout: ms(
                "upstream.total_connect_timeout_ms",
                f.upstream.total_connect_timeout_ms,
                1..=60_000,
            )?,
            read_timeout: ms("upstream.read_timeout_ms", f.upstream.read_timeout_ms, 1..=600_000)?,
            write_timeout: ms("upstream.write_timeout_ms", f.upstream.write_timeout_ms, 1..=600_000)?,
            idle_timeout: secs("upstream.idle_timeout_secs", f.upstream.idle_timeout_secs, 1..=3600)?,
            auth_url,
            auth_host,
            auth_port,
            resolve_interval: secs("auth.resolve_interval_secs", f.auth.resolve_interval_secs, 1..=3600)?,
            fallback_deadline: ms("auth.deadline_ms", f.auth.deadline_ms, 10..=30_000)?,
            rate_limit_per_sec: f.auth.rate_limit_per_sec,
            rate_limit_burst: f.auth.rate_limit_burst,
            retry_after_secs: in_range("auth.retry_after_secs", f.auth.retry_after_secs, 1..=300)?,
            rules: TokenRules {
                leeway_secs: in_range("jwt.leeway_secs", f.jwt.leeway_secs, 0..=60)?,
                max_lifetime_secs: in_range("jwt.max_lifetime_secs", f.jwt.max_lifetime_secs, 60..=31_536_000)?,
            },
            keyring_refresh_interval: secs("jwt.refresh_interval_secs", f.jwt.refresh_interval_secs, 1..=86_400)?,
            keyring_min_refresh_gap: ms("jwt.min_refresh_gap_ms", f.jwt.min_refresh_gap_ms, 100..=600_000)?,
            unknown_kid_wait: ms("jwt.unknown_kid_wait_ms", f.jwt.unknown_kid_wait_ms, 0..=30_000)?,
            keyring,
            revocation_poll_interval: secs("revocation.poll_interval_secs", f.revocation.poll_interval_secs, 1..=3600)?,
            revocation_max_age: match in_range("revocation.max_age_secs", f.revocation.max_age_secs, 0..=86_400)? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            cache_capacity,
            cache_max_ttl: secs("cache.max_ttl_secs", c.max_ttl_secs, 1..=86_400)?,
            negative_ttl: secs("cache.negative_ttl_secs", c.negative_ttl_secs, 0..=300)?,
            unknown_kid_ttl: secs("cache.unknown_kid_ttl_secs", c.unknown_kid_ttl_secs, 0..=3600)?,
            grace_period_secs: grace,
            graceful_shutdown_timeout_secs: final_timeout,
            public_routes,
        })
    }

    /// Only the admin address, for `gateway healthcheck`: it must work even where the rest of
    /// the configuration (secrets) is not visible to the probe.
    pub fn metrics_addr(path: &str, env: &dyn Source) -> SocketAddr {
        let file = std::fs::read_to_string(path).ok().and_then(|t| parse_file(&t).ok()).unwrap_or_default();
        addr(env, "METRICS_ADDR", "server.metrics", &file.server.metrics)
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9100)))
    }

    /// True when `path` (without query) is one of the public routes: exact match only, so
    /// `/tasks/health/../x` or an encoded variant still requires a token.
    pub fn is_public(&self, path: &str) -> bool {
        self.public_routes.iter().any(|r| r == path)
    }
}

fn parse_file(text: &str) -> Result<SidecarFile, String> {
    // toml's message names the unknown or mistyped key and its line.
    toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
}

fn in_range(key: &str, v: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(key, format!("{v} is out of range {}..={}", range.start(), range.end())))
    }
}

fn addr(env: &dyn Source, env_key: &str, file_key: &str, file_value: &str) -> Result<SocketAddr, ConfigError> {
    let (key, value) = match raw(env, env_key) {
        Some(v) => (env_key, v),
        None => (file_key, file_value.to_owned()),
    };
    value.trim().parse().map_err(|e| ConfigError::new(key, format!("invalid socket address {value:?}: {e}")))
}

/// A Unix socket path from `env_key` or the file; empty means none. Absolute, and short enough
/// for `sockaddr_un` (108 bytes with the terminating NUL).
fn unix_socket(
    env: &dyn Source,
    env_key: &str,
    file_key: &str,
    file_value: &str,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let (key, value) = match raw(env, env_key) {
        Some(v) => (env_key, v),
        None => (file_key, file_value.to_owned()),
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with('/') || value.len() >= 108 {
        return Err(ConfigError::new(key, format!("{value:?} must be an absolute path shorter than 108 bytes")));
    }
    Ok(Some(std::path::PathBuf::from(value)))
}

/// Like [`addr`], but `off` (any case) means "disabled".
fn addr_or_off(
    env: &dyn Source,
    env_key: &str,
    file_key: &str,
    file_value: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let value = raw(env, env_key).unwrap_or_else(|| file_value.to_owned());
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    addr(env, env_key, file_key, file_value).map(Some)
}

/// `http://host[:port][/]` → (host, port). Only plain HTTP: auth-svc is reached inside the VPC.
fn parse_http_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?} must start with http://"))?;
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(format!("{url:?} must be a bare origin, e.g. http://host:3000"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h.to_owned(), p.parse::<u16>().map_err(|e| format!("invalid port in {url:?}: {e}"))?)
        }
        _ => (rest.to_owned(), 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_match_the_ecs_layout() {
        let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(c.upstream.to_string(), "127.0.0.1:3001");
        assert_eq!(c.metrics.to_string(), "0.0.0.0:9100");
        assert_eq!(c.auth_host, "auth-service.task-management.local");
        assert_eq!(c.auth_port, 3000);
        assert_eq!(c.grace_period_secs + c.graceful_shutdown_timeout_secs, 20);
        assert_eq!(c.keepalive_timeout_secs, 75, "above the ALB's default idle timeout (60 s)");
        assert_eq!(c.upstream_metrics, Some("127.0.0.1:9102".parse().unwrap()));
        assert_eq!(c.resolve_interval, Duration::from_secs(5));
        assert!(c.is_public("/tasks/health"));
        assert!(c.is_public("/tasks/openapi.json"));
        for path in ["/tasks/health/", "/tasks", "/tasks/openapi.json/", "/tasks/OPENAPI.json", "/tasks/openapi.jsonx"]
        {
            assert!(!c.is_public(path), "{path}");
        }
    }

    #[test]
    fn the_repository_sidecar_toml_parses_and_states_the_default_public_routes() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sidecar.toml")).unwrap();
        let file = parse_file(&text).unwrap();
        assert_eq!(file.routes.public, DEFAULT_PUBLIC_ROUTES);
        Config::from_file(file, &env(&[("JWT_SECRET", SECRET)])).unwrap();
    }

    #[test]
    fn the_file_round_trips_through_toml_and_set_checks_the_schema() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sidecar.toml")).unwrap();
        let file = SidecarFile::from_toml(&text).unwrap();
        assert_eq!(SidecarFile::from_toml(&file.to_toml().unwrap()).unwrap(), file);
        let mut f = SidecarFile::default();
        f.set("server.threads", "1").unwrap();
        f.set("cache.enabled", "false").unwrap();
        assert_eq!((f.server.threads, f.cache.enabled), (1, false));
        assert!(f.set("cache.capacty", "1").unwrap_err().contains("capacty"));
        assert!(f.set("cache.enabled", "\"yes\"").is_err());
        assert!(f.set("threads", "1").is_err());
    }

    #[test]
    fn unknown_keys_fail_naming_the_key() {
        let err = parse_file("[cache]\ncapacty = 5\n").unwrap_err();
        assert!(err.contains("capacty"), "{err}");
        let err = parse_file("[nope]\n").unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn environment_overrides_win_and_bad_values_name_the_key() {
        let c = Config::from_file(
            SidecarFile::default(),
            &env(&[
                ("JWT_SECRET", SECRET),
                ("GATEWAY_LISTEN", "127.0.0.1:8080"),
                ("AUTH_SERVICE_URL", "http://127.0.0.1:4000/"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!((c.auth_host.as_str(), c.auth_port), ("127.0.0.1", 4000));
        let err = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_ADDR", "nope")]))
            .unwrap_err();
        assert_eq!(err.key, "UPSTREAM_ADDR");
        let err = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(err.key, "JWT_SECRET");
        assert!(!err.to_string().contains("short"));
        let err = Config::from_file(SidecarFile::default(), &env(&[])).unwrap_err();
        assert_eq!(err.key, "JWT_SECRET");
        let mut f = SidecarFile::default();
        f.shutdown.grace_period_secs = 300;
        assert_eq!(
            Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err().key,
            "shutdown.grace_period_secs"
        );
    }

    #[test]
    fn keepalive_and_task_metrics_pass_through_are_configurable() {
        let file = parse_file("[server]\nkeepalive_timeout_secs = 120\n[upstream]\nmetrics = \"off\"\n").unwrap();
        let c = Config::from_file(file, &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.keepalive_timeout_secs, 120);
        assert_eq!(c.upstream_metrics, None);
        let c = Config::from_file(
            SidecarFile::default(),
            &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_METRICS_ADDR", "127.0.0.1:19102")]),
        )
        .unwrap();
        assert_eq!(c.upstream_metrics, Some("127.0.0.1:19102".parse().unwrap()));
        let mut f = SidecarFile::default();
        f.server.keepalive_timeout_secs = 0;
        let err = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err();
        assert_eq!(err.key, "server.keepalive_timeout_secs");
        let err =
            Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_METRICS_ADDR", "x")]))
                .unwrap_err();
        assert_eq!(err.key, "UPSTREAM_METRICS_ADDR");
    }

    #[test]
    fn token_rules_and_revocation_settings_are_checked() {
        let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.rules.max_lifetime_secs, 604_800);
        assert_eq!(c.revocation_poll_interval, Duration::from_secs(2));
        assert_eq!(c.revocation_max_age, None);
        let mut f = SidecarFile::default();
        f.revocation.max_age_secs = 2;
        let err = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err();
        assert_eq!(err.key, "revocation.max_age_secs");
        let mut f = SidecarFile::default();
        f.revocation.max_age_secs = 30;
        f.jwt.max_lifetime_secs = 3600;
        let c = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.revocation_max_age, Some(Duration::from_secs(30)));
        assert_eq!(c.rules.max_lifetime_secs, 3600);
        let mut f = SidecarFile::default();
        f.jwt.max_lifetime_secs = 10;
        assert_eq!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err().key, "jwt.max_lifetime_secs");
    }

    #[test]
    fn the_upstream_can_be_a_unix_socket_from_the_file_or_the_environment() {
        let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.upstream_socket, None, "TCP by default");
        let file = parse_file("[upstream]\nsocket = \"/run/task-svc/task-svc.sock\"\n").unwrap();
        let c = Config::from_file(file.clone(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/run/task-svc/task-svc.sock")));
        // The environment wins; an empty value there is unset, as for every key (ECS task
        // definitions carry ""), so the file's socket stays.
        let c = Config::from_file(file.clone(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_SOCKET", "/tmp/t.sock")]))
            .unwrap();
        assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/tmp/t.sock")));
        let c = Config::from_file(file, &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_SOCKET", "")])).unwrap();
        assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/run/task-svc/task-svc.sock")));
        let err = Config::from_file(
            parse_file("[upstream]\nsocket = \"task.sock\"\n").unwrap(),
            &env(&[("JWT_SECRET", SECRET)]),
        )
        .unwrap_err();
        assert_eq!(err.key, "upstream.socket");
        // Written out only when set: a file for an older gateway does not gain the key.
        assert!(!SidecarFile::default().to_toml().unwrap().contains("socket"));
    }

    #[test]
    fn cache_can_be_disabled() {
        let mut f = SidecarFile::default();
        f.cache.capacity = 0;
        assert!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap().cache_capacity.is_none());
        let mut f = SidecarFile::default();
        f.cache.enabled = false;
        assert!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap().cache_capacity.is_none());
    }

    #[test]
    fn config_path_precedence() {
        let args = vec!["gateway".to_owned(), "--config".to_owned(), "/x.toml".to_owned()];
        assert_eq!(config_path(&args, &env(&[("SIDECAR_CONFIG", "/y.toml")])), ("/x.toml".into(), true));
        assert_eq!(config_path(&["--config=/z".to_owned()], &env(&[])), ("/z".into(), true));
        assert_eq!(config_path(&[], &env(&[("SIDECAR_CONFIG", "/y.toml")])), ("/y.toml".into(), true));
        assert_eq!(config_path(&[], &env(&[])), ("sidecar.toml".into(), false));
    }

    #[test]
    fn auth_url_must_be_a_plain_origin() {
        assert!(parse_http_url("https://x").is_err());
        assert!(parse_http_url("http://x/auth").is_err());
        assert_eq!(parse_http_url("http://x").unwrap(), ("x".into(), 80));
    }
}
