//! The gateway's configuration: `sidecar.toml` ([`file`]) plus the environment overrides ECS and
//! local runs set per task, validated into one [`Config`]. Errors name the offending key and
//! never echo a secret.

mod file;
#[cfg(test)]
mod tests;
mod values;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use platform::config::{ConfigError, Source, raw};
use platform::keyring::{KeyringConfig, TokenRules};

use file::parse_file;
pub use file::*;
use values::{addr, addr_or_off, in_range, parse_http_url, unix_socket};

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
