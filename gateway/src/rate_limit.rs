//! Per-subject rate limits: one GCRA state per subject (`governor`'s keyed limiter on a DashMap
//! store), the subject being the API key a token was issued to, else the user.
//!
//! The configured rate is the fleet's: every task-service task runs a gateway and the ALB
//! spreads a subject's requests over them, so each gateway allows `fleet_rate / N` per second
//! and a burst of `ceil(burst / N)`, N being the number of task-service tasks counted from the
//! A records of `peers_dns_name` (Cloud Map), re-read every `peers_refresh_secs`.
//!
//! Error bound (also in docs/gateway.md): a subject whose requests the ALB spreads evenly over
//! the N gateways gets the fleet rate. Spread unevenly, it gets less, down to `fleet_rate / N`
//! when all of them land on one gateway (each gateway only knows its own share); it never gets
//! more than `fleet_rate` in the long run, plus at most N - 1 extra requests of burst from
//! rounding the per-gateway burst up. While N changes, between a task starting or stopping and
//! every gateway's next lookup (Cloud Map's zone update, 30-60 s, + the record TTL +
//! `peers_refresh_secs`), the fleet allows
//! `fleet_rate × N_new / N_old`: more than the configured rate while scaling out (×2 from 2 to 4
//! tasks), less while scaling in. A gateway whose N changes starts its subjects afresh (a full
//! burst each). Cloud Map answers at most 8 A records per query: with more than 8 tasks N stays
//! 8 and a subject can get up to `fleet_rate × tasks / 8`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use platform::config::ConfigError;
use prometheus::{IntCounter, IntGauge, Registry};

use crate::config::file::RateLimitSection;
use crate::config::values::{in_range, secs};
use crate::decision::{Identity, JtiKey};

/// `[rate_limit]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Requests per second per subject across the fleet.
    pub fleet_rate_per_sec: NonZeroU32,
    /// Requests at once per subject across the fleet.
    pub burst: NonZeroU32,
    /// The host name counted for N; `None`: N = `fixed_peers`.
    pub peers_dns_name: Option<String>,
    /// N without a DNS name (`[rate_limit] peers`, 1 when unset).
    pub fixed_peers: NonZeroU32,
    pub peers_refresh: Duration,
    pub evict_interval: Duration,
}

/// Largest rate and burst accepted: beyond that the limit is no limit.
const MAX_RATE: u64 = 1_000_000;

fn nonzero(key: &str, v: u32) -> Result<NonZeroU32, ConfigError> {
    let v = in_range(key, u64::from(v), 1..=MAX_RATE)?;
    NonZeroU32::new(u32::try_from(v).unwrap_or(u32::MAX)).ok_or_else(|| ConfigError::new(key, "must be at least 1"))
}

/// A DNS host name (RFC 1123 §2.1 letters, digits, hyphens and dots, at most 253 bytes); empty
/// is none.
fn host_name(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let valid = value.len() <= 253
        && value.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err(ConfigError::new(key, format!("{value:?} is not a DNS host name (no scheme, port or path)")));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

impl TryFrom<&RateLimitSection> for RateLimitSettings {
    type Error = ConfigError;

    fn try_from(s: &RateLimitSection) -> Result<Self, ConfigError> {
        let peers_dns_name = host_name("[rate_limit] peers_dns_name", &s.peers_dns_name)?;
        if peers_dns_name.is_some() && s.peers != 0 {
            return Err(ConfigError::new(
                "[rate_limit] peers",
                "set either peers (a fixed N) or peers_dns_name (N counted from DNS), not both",
            ));
        }
        let fixed_peers = match s.peers {
            0 => NonZeroU32::MIN,
            n => nonzero("[rate_limit] peers", n)?,
        };
        Ok(Self {
            enabled: s.enabled,
            fleet_rate_per_sec: nonzero("[rate_limit] fleet_rate_per_sec", s.fleet_rate_per_sec)?,
            burst: nonzero("[rate_limit] burst", s.burst)?,
            peers_dns_name,
            fixed_peers,
            peers_refresh: secs("[rate_limit] peers_refresh_secs", s.peers_refresh_secs, 1..=3600)?,
            evict_interval: secs("[rate_limit] evict_interval_secs", s.evict_interval_secs, 1..=3600)?,
        })
    }
}

/// Whom a limit applies to: the API key a token was issued to (its `client_id`, hashed), else
/// the user. Tokens of one API key share its limit; a user's login tokens share the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    ApiKey(JtiKey),
    User(i64),
}

impl Subject {
    pub fn of(identity: &Identity) -> Self {
        identity.client.map_or(Self::User(identity.user_id), Self::ApiKey)
    }
}

/// One gateway's share of the fleet's quota: `fleet_rate / peers` per second (one request every
/// `peers / fleet_rate` seconds, rounded up to the nanosecond) and a burst of
/// `ceil(burst / peers)`, at least 1.
pub fn gateway_share(fleet_rate: NonZeroU32, burst: NonZeroU32, peers: NonZeroU32) -> Quota {
    let nanos = (u64::from(peers.get()) * 1_000_000_000).div_ceil(u64::from(fleet_rate.get()));
    let share = burst.get().div_ceil(peers.get());
    // `nanos` >= 1000 (fleet_rate <= MAX_RATE) and `share` >= 1 (burst >= 1): both fallbacks
    // are unreachable.
    Quota::with_period(Duration::from_nanos(nanos.max(1)))
        .unwrap_or_else(|| Quota::per_second(fleet_rate))
        .allow_burst(NonZeroU32::new(share).unwrap_or(NonZeroU32::MIN))
}

/// The `RateLimit-Policy` value (draft-ietf-httpapi-ratelimit-headers-11 §3, a Structured
/// Fields List of one item): the fleet's burst `q` requests per window of `w` seconds, `w` the
/// time the rate takes to refill a burst, rounded up to a whole second (at least 1).
pub fn policy_header(fleet_rate: NonZeroU32, burst: NonZeroU32) -> String {
    let window = u64::from(burst.get()).div_ceil(u64::from(fleet_rate.get())).max(1);
    format!("\"default\";q={burst};w={window}")
}

/// A request over its subject's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// How long until this gateway admits the subject's next request.
    pub wait: Duration,
}

impl Limited {
    /// Whole seconds to wait, rounded up, at least 1 (`Retry-After`, RFC 9110 §10.2.3, and the
    /// `t` of `RateLimit`).
    pub fn retry_after_secs(self) -> u64 {
        let secs = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        secs.max(1)
    }

    /// The 429's extra headers: `Retry-After`, `RateLimit-Policy` (`policy`, see
    /// [`policy_header`]) and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 §4: `r`
    /// remaining requests, 0, and `t` seconds until one is admitted again).
    pub fn headers(self, policy: &str) -> [(&'static str, String); 3] {
        let retry = self.retry_after_secs();
        [
            ("retry-after", retry.to_string()),
            ("ratelimit-policy", policy.to_owned()),
            ("ratelimit", format!("\"default\";r=0;t={retry}")),
        ]
    }
}

type Keyed<C> = RateLimiter<Subject, DashMapStateStore<Subject>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The limiter of one value of N.
struct Share<C: Clock> {
    peers: NonZeroU32,
    limiter: Keyed<C>,
}

/// The metrics of the limits (registered in the gateway's registry; none of them has a label:
/// a subject is never a label value).
#[derive(Clone)]
pub struct RateLimitMetrics {
    pub limited: IntCounter,
    pub peers: IntGauge,
    pub subjects: IntGauge,
}

impl RateLimitMetrics {
    /// Registers `gateway_rate_limited_total` (0 from the start), `gateway_rate_limit_peers` and
    /// `gateway_rate_limit_subjects`. Errors: a name already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let limited = IntCounter::new(
            "gateway_rate_limited_total",
            "Requests answered 429 because their subject (API key or user) exceeded its rate",
        )?;
        let peers = IntGauge::new(
            "gateway_rate_limit_peers",
            "N, the task-service tasks the fleet rate is divided by (1 without peers_dns_name)",
        )?;
        let subjects =
            IntGauge::new("gateway_rate_limit_subjects", "Subjects with rate-limit state after the last eviction")?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(peers.clone()))?;
        registry.register(Box::new(subjects.clone()))?;
        Ok(Self { limited, peers, subjects })
    }
}

/// The per-subject limits of this gateway. `C` is the clock (a fake one in tests).
pub struct SubjectLimits<C: Clock = DefaultClock> {
    settings: RateLimitSettings,
    clock: C,
    share: ArcSwap<Share<C>>,
    policy: String,
    metrics: RateLimitMetrics,
}

impl SubjectLimits<DefaultClock> {
    /// The limits of `settings` with N = `fixed_peers` (1 with a DNS name, until its first count).
    pub fn new(settings: &RateLimitSettings, metrics: RateLimitMetrics) -> Self {
        Self::with_clock(settings, metrics, DefaultClock::default())
    }
}

impl<C: Clock + Clone> SubjectLimits<C> {
    pub fn with_clock(settings: &RateLimitSettings, metrics: RateLimitMetrics, clock: C) -> Self {
        let share = Self::share(settings, settings.fixed_peers, &clock);
        metrics.peers.set(i64::from(settings.fixed_peers.get()));
        Self {
            policy: policy_header(settings.fleet_rate_per_sec, settings.burst),
            settings: settings.clone(),
            clock,
            share: ArcSwap::from_pointee(share),
            metrics,
        }
    }

    fn share(settings: &RateLimitSettings, peers: NonZeroU32, clock: &C) -> Share<C> {
        let quota = gateway_share(settings.fleet_rate_per_sec, settings.burst, peers);
        Share { peers, limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()) }
    }

    /// Counts one request of `subject`: `Err` when it is over the limit (and counted in
    /// `gateway_rate_limited_total`).
    pub fn check(&self, subject: Subject) -> Result<(), Limited> {
        let share = self.share.load();
        share.limiter.check_key(&subject).map_err(|not_until| {
            self.metrics.limited.inc();
            Limited { wait: not_until.wait_time_from(self.clock.now()) }
        })
    }

    /// The `RateLimit-Policy` value of every 429.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The N in use.
    pub fn peers(&self) -> NonZeroU32 {
        self.share.load().peers
    }

    /// Uses `peers` for N from now on. A different N starts a new limiter: every subject gets a
    /// fresh burst of the new share (rare: it follows a scaling of the service).
    pub fn set_peers(&self, peers: NonZeroU32) {
        if self.peers() == peers {
            return;
        }
        tracing::info!(from = self.peers().get(), to = peers.get(), "rate limit: task-service task count changed");
        self.share.store(Arc::new(Self::share(&self.settings, peers, &self.clock)));
        self.metrics.peers.set(i64::from(peers.get()));
    }

    /// Forgets the subjects whose state is back to a full burst (governor's `retain_recent`:
    /// idle for at least `(burst + 1) / rate` seconds of this gateway's share) and gives the
    /// freed table space back (`shrink_to_fit`); returns the subjects left.
    pub fn evict(&self) -> usize {
        let share = self.share.load();
        share.limiter.retain_recent();
        share.limiter.shrink_to_fit();
        let left = share.limiter.len();
        self.metrics.subjects.set(i64::try_from(left).unwrap_or(i64::MAX));
        left
    }

    /// Subjects with state now.
    pub fn len(&self) -> usize {
        self.share.load().limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The distinct IPv4 addresses `host` resolves to (A records), or its IPv6 ones when it has
/// none, with the system resolver (as the auth-svc resolver looks names up): a task with both
/// an A and an AAAA record counts once. Errors: the lookup failed.
pub async fn count_addresses(host: &str) -> std::io::Result<usize> {
    let mut ips: Vec<IpAddr> = tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect();
    ips.sort_unstable();
    ips.dedup();
    let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
    Ok(if v4 > 0 { v4 } else { ips.len() })
}

/// Counts `host`'s addresses into N; a failed or empty lookup keeps the previous N.
pub async fn refresh_peers<C: Clock + Clone>(limits: &SubjectLimits<C>, host: &str) -> bool {
    match count_addresses(host).await {
        Ok(n) if n > 0 => {
            limits.set_peers(NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN));
            true
        }
        Ok(_) => {
            tracing::warn!(host, "rate limit: peer name has no address; keeping N");
            false
        }
        Err(e) => {
            tracing::warn!(host, error = %e, "rate limit: peer lookup failed; keeping N");
            false
        }
    }
}

/// Background service: re-counts the peers (when a name is set) and evicts idle subjects.
pub struct RateLimitService {
    pub limits: Arc<SubjectLimits>,
}

#[async_trait]
impl BackgroundService for RateLimitService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let settings = &self.limits.settings;
        let mut peers = tokio::time::interval(settings.peers_refresh);
        let mut evict = tokio::time::interval(settings.evict_interval);
        // The first tick of an interval is immediate: count the peers at once, evict later.
        evict.tick().await;
        loop {
            tokio::select! {
                _ = peers.tick() => {
                    if let Some(host) = &settings.peers_dns_name {
                        refresh_peers(&self.limits, host).await;
                    }
                }
                _ = evict.tick() => {
                    self.limits.evict();
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
