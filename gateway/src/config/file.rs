//! `sidecar.toml` as written: every table `deny_unknown_fields`, every key optional with a
//! default. [`SidecarFile`] is also how the launcher, the bench and the tests write a sidecar
//! file (`set`, `to_toml`), so a file they write is one the gateway reads. Only types and
//! defaults here: each section is validated by its component (see [`super`]).

use std::path::Path;

use platform::config::ConfigError;
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
    /// Not written out while it holds the defaults, so configs the launchers and the bench write
    /// stay readable by gateways built before the table existed.
    #[serde(skip_serializing_if = "RateLimitSection::is_default")]
    pub rate_limit: RateLimitSection,
    /// Not written out while it holds the defaults (as `rate_limit`).
    #[serde(skip_serializing_if = "AccessLogSection::is_default")]
    pub access_log: AccessLogSection,
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
            .ok_or_else(|| format!("{dotted_key}: {value:?} is not a TOML value (a string is quoted: key=\"text\")"))?;
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
    /// Most header fields in one request; more -> 431 (see [`crate::request_limits`]).
    /// The four limits are not written out at their defaults, so configs written by this
    /// version (the run command's, the bench's) stay readable by gateways older than them.
    #[serde(skip_serializing_if = "is_default_header_count")]
    pub max_header_count: usize,
    /// Largest header section (every field's name and value plus 4 bytes of framing each),
    /// bytes; larger -> 431.
    #[serde(skip_serializing_if = "is_default_header_bytes")]
    pub max_header_bytes: usize,
    /// Longest request target, bytes; longer -> 414.
    #[serde(skip_serializing_if = "is_default_uri_bytes")]
    pub max_uri_bytes: usize,
    /// Largest request body, bytes (`Content-Length`, or the chunks as they arrive); larger -> 413.
    #[serde(skip_serializing_if = "is_default_body_bytes")]
    pub max_body_bytes: u64,
}

fn is_default_header_count(v: &usize) -> bool {
    *v == crate::request_limits::DEFAULT_MAX_HEADER_COUNT
}

fn is_default_header_bytes(v: &usize) -> bool {
    *v == crate::request_limits::DEFAULT_MAX_HEADER_BYTES
}

fn is_default_uri_bytes(v: &usize) -> bool {
    *v == crate::request_limits::DEFAULT_MAX_URI_BYTES
}

fn is_default_body_bytes(v: &u64) -> bool {
    *v == crate::request_limits::DEFAULT_MAX_BODY_BYTES
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
            max_header_count: crate::request_limits::DEFAULT_MAX_HEADER_COUNT,
            max_header_bytes: crate::request_limits::DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: crate::request_limits::DEFAULT_MAX_URI_BYTES,
            max_body_bytes: crate::request_limits::DEFAULT_MAX_BODY_BYTES,
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
    /// How long a pooled connection to task-svc may sit idle before the gateway closes it.
    /// task-svc never closes an idle connection itself (axum's server sets no idle or
    /// header-read timeout), so this bounds how many idle connections outlive a burst. If
    /// task-svc ever gets one, this must stay below it: the client side of a keep-alive
    /// connection has to close first, or it may send a request on a connection being closed.
    pub idle_timeout_secs: u64,
    /// Idle connections to task-svc kept for reuse, per proxy thread (pingora's
    /// `upstream_keepalive_pool_size`). A connection released into a full pool closes the
    /// least recently used one.
    pub keepalive_pool_size: u64,
}

/// Default pool of idle connections to task-svc per proxy thread: pingora's own default.
pub const DEFAULT_KEEPALIVE_POOL_SIZE: u64 = 128;

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
            keepalive_pool_size: DEFAULT_KEEPALIVE_POOL_SIZE,
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

/// `[rate_limit]`: the per-subject request rate (see `crate::rate_limit`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    pub enabled: bool,
    /// Requests per second one subject (an API key, else a user) may make across every gateway.
    pub fleet_rate_per_sec: u32,
    /// Requests one subject may make at once across every gateway before the rate applies.
    pub burst: u32,
    /// A DNS name with one A record per task-service task (Cloud Map), counted to split the
    /// fleet rate between the gateways; empty: this gateway is alone (N = 1).
    pub peers_dns_name: String,
    /// A fixed N where there is no DNS name to count (the run command sets its task count);
    /// 0: N from `peers_dns_name`, or 1 without one. Not both. Newer than the table: not
    /// written out at 0, so a file with the table changed stays readable by a gateway built
    /// before the key (the bench's baseline).
    #[serde(skip_serializing_if = "is_zero")]
    pub peers: u32,
    /// Seconds between two lookups of `peers_dns_name`.
    pub peers_refresh_secs: u64,
    /// Seconds between two evictions of subjects idle long enough to be back at a full burst.
    pub evict_interval_secs: u64,
}

/// Default fleet rate per subject: far above what a person using the API by hand makes.
pub const DEFAULT_FLEET_RATE_PER_SEC: u32 = 50;
/// Default burst per subject.
pub const DEFAULT_BURST: u32 = 100;

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            enabled: true,
            fleet_rate_per_sec: DEFAULT_FLEET_RATE_PER_SEC,
            burst: DEFAULT_BURST,
            peers_dns_name: String::new(),
            peers: 0,
            peers_refresh_secs: 10,
            evict_interval_secs: 60,
        }
    }
}

impl RateLimitSection {
    /// Whether every key holds its default (then the table is not written out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `[access_log]`: which requests get an access line (see `crate::access_log`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogSection {
    /// The share of successful requests (status below 400) given an access line, 0..=1
    /// (default [`AccessLogSection::DEFAULT_SUCCESSES`]).
    pub successes: f64,
    /// Milliseconds from the request's head to the end of its response at and above which a
    /// success gets a line whatever the share (0: none for its duration). Default 500: every
    /// request behind a p99 over the 1 s alert (`HighLatencyP99`) can be found in the log.
    /// Left out of a written file at its default: a gateway older than the key reads the file.
    #[serde(skip_serializing_if = "AccessLogSection::is_default_slow_ms")]
    pub slow_ms: u64,
}

impl AccessLogSection {
    /// One success in a hundred: a line per request is the largest cost on the hop that is not
    /// forwarding (docs/benchmarks.md, "Sampled access lines"); refusals, errors and sampled
    /// traces are logged whatever the share, and the metrics count every request.
    pub const DEFAULT_SUCCESSES: f64 = 0.01;
    /// [`AccessLogSection::slow_ms`]'s default.
    pub const DEFAULT_SLOW_MS: u64 = 500;

    fn is_default_slow_ms(v: &u64) -> bool {
        *v == Self::DEFAULT_SLOW_MS
    }
}

impl Default for AccessLogSection {
    fn default() -> Self {
        Self { successes: Self::DEFAULT_SUCCESSES, slow_ms: Self::DEFAULT_SLOW_MS }
    }
}

impl AccessLogSection {
    /// Whether every key holds its default (then the table is not written out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn parse_file(text: &str) -> Result<SidecarFile, String> {
    // toml's message names the unknown or mistyped key and its line.
    toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
}
