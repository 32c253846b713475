//! Asking auth-svc, for the one case the gateway cannot decide locally: a token whose key id is
//! not in its keyring (e.g. a rotation the gateway has not seen yet).
//!
//! Guarded so that a flood of tokens with made-up key ids cannot become a flood on auth-svc:
//! - one call per token at a time: concurrent requests with the same token wait for the one
//!   call in flight (moka `try_get_with`), and its answer is kept briefly;
//! - a negative cache of key ids auth-svc itself did not know;
//! - a global token-bucket rate limit; past it the answer is 503, never fail-open;
//! - a short deadline per call; slow or unreachable auth-svc is 503 too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;
use platform::keyring::{Claims, Rejection};
use serde::Deserialize;

use crate::decision::{Identity, Unavailable};
use crate::keyring_source::KeyringStore;
use crate::metrics::Metrics;
use crate::resolver::{AuthResolver, ClientResolver};
use crate::token_cache::{self, Cached, DecisionExpiry, TokenKey};

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
pub struct RateLimiter {
    state: Mutex<(f64, Instant)>,
    rate: f64,
    burst: f64,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new((f64::from(burst), Instant::now())),
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst),
        }
    }

    pub fn try_take(&self) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *guard;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Deserialize)]
struct ValidateOk {
    valid: bool,
    user: Claims,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    message: String,
}

/// What a probe learnt about a kid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KidVerdict {
    /// auth-svc holds the key (the token itself may still have been refused).
    Known,
    /// auth-svc does not hold it either.
    Unknown,
}

pub struct FallbackConfig {
    pub base_url: String,
    pub deadline: Duration,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub unknown_kid_ttl: Duration,
    /// How long a fallback answer is reused for identical tokens (independent of the main
    /// token cache, so coalescing also works with that cache disabled).
    pub answer_ttl: Duration,
}

pub struct Fallback {
    client: reqwest::Client,
    validate_url: String,
    deadline: Duration,
    limiter: RateLimiter,
    answers: Cache<TokenKey, Cached>,
    /// In-flight (and just finished) probes per unknown kid; see [`Fallback::gated_call`].
    kid_probes: Cache<String, KidVerdict>,
    unknown_kids: Cache<String, ()>,
    keyring: Arc<KeyringStore>,
    metrics: Metrics,
}

/// Largest auth-svc answer we read; ours are well under 1 KiB.
const MAX_REPLY_BYTES: usize = 16 * 1024;

impl Fallback {
    pub fn new(
        cfg: FallbackConfig,
        resolver: Arc<AuthResolver>,
        keyring: Arc<KeyringStore>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(ClientResolver(resolver)))
            .connect_timeout(cfg.deadline)
            .timeout(cfg.deadline)
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let expiry = DecisionExpiry { max_ttl: cfg.answer_ttl, negative_ttl: cfg.answer_ttl };
        Ok(Self {
            client,
            validate_url: format!("{}/auth/validate", cfg.base_url),
            deadline: cfg.deadline,
            limiter: RateLimiter::new(cfg.rate_limit_per_sec, cfg.rate_limit_burst),
            answers: token_cache::build(10_000, expiry),
            kid_probes: Cache::builder().max_capacity(10_000).time_to_live(cfg.answer_ttl).build(),
            unknown_kids: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(cfg.unknown_kid_ttl.max(Duration::from_millis(1)))
                .build(),
            keyring,
            metrics,
        })
    }

    /// auth-svc's verdict on `token` (whose key id `kid` the gateway does not hold).
    pub async fn validate(&self, key: TokenKey, token: &str, kid: &str) -> Result<Cached, Unavailable> {
        if self.unknown_kids.contains_key(kid) {
            return Ok(Cached::Deny(Rejection::UnknownKid));
        }
        let ran = AtomicBool::new(false);
        let result = self
            .answers
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                self.gated_call(token, kid).await
            })
            .await;
        if !ran.load(Ordering::Relaxed) {
            self.metrics.coalesced_waiters.inc();
        }
        result.map_err(|e| *e)
    }

    /// One probe per kid at a time: the first token with an unknown kid calls auth-svc; other
    /// tokens with the same kid wait for that answer. If auth-svc did not know the kid either,
    /// they are refused without a call; if it was unreachable, they get 503 without a call; only
    /// if the kid is real does each token get its own call (it may still be expired or forged).
    async fn gated_call(&self, token: &str, kid: &str) -> Result<Cached, Unavailable> {
        let mine: Mutex<Option<Result<Cached, Unavailable>>> = Mutex::new(None);
        let verdict = self
            .kid_probes
            .try_get_with(kid.to_owned(), async {
                let result = self.call(token, kid).await;
                *mine.lock().unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
                match result {
                    Ok(Cached::Deny(Rejection::UnknownKid)) => Ok(KidVerdict::Unknown),
                    Ok(_) => Ok(KidVerdict::Known),
                    Err(e) => Err(e),
                }
            })
            .await;
        if let Some(result) = mine.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return result;
        }
        self.metrics.coalesced_waiters.inc();
        match verdict {
            Err(e) => Err(*e),
            Ok(KidVerdict::Unknown) => Ok(Cached::Deny(Rejection::UnknownKid)),
            Ok(KidVerdict::Known) => self.call(token, kid).await,
        }
    }

    async fn call(&self, token: &str, kid: &str) -> Result<Cached, Unavailable> {
        if !self.limiter.try_take() {
            self.metrics.fallback_calls.with_label_values(&["rate_limited"]).inc();
            return Err(Unavailable::RateLimited);
        }
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.deadline, self.exchange(token)).await;
        self.metrics.fallback_duration.observe(start.elapsed().as_secs_f64());
        let (label, result) = match outcome {
            Err(_) => ("timeout", Err(Unavailable::AuthUnavailable)),
            Ok(Err(Failure::Timeout)) => ("timeout", Err(Unavailable::AuthUnavailable)),
            Ok(Err(Failure::Other(reason))) => {
                tracing::warn!(%reason, "auth-svc fallback failed");
                ("error", Err(Unavailable::AuthUnavailable))
            }
            Ok(Ok(Cached::Allow(id))) => {
                if !self.keyring.current().is_some_and(|r| r.contains(kid)) {
                    // auth-svc knows a key we do not: the secret has probably rotated.
                    tracing::info!(kid, "auth-svc accepted a token for a key id we do not hold; refreshing keyring");
                    self.keyring.request_refresh();
                }
                ("valid", Ok(Cached::Allow(id)))
            }
            Ok(Ok(Cached::Deny(r))) => {
                if r == Rejection::UnknownKid {
                    self.unknown_kids.insert(kid.to_owned(), ()).await;
                }
                ("invalid", Ok(Cached::Deny(r)))
            }
        };
        self.metrics.fallback_calls.with_label_values(&[label]).inc();
        result
    }

    async fn exchange(&self, token: &str) -> Result<Cached, Failure> {
        let response = self.client.post(&self.validate_url).bearer_auth(token).send().await.map_err(Failure::from)?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > MAX_REPLY_BYTES as u64) {
            return Err(Failure::Other("auth-svc reply too large".into()));
        }
        let body = response.bytes().await.map_err(Failure::from)?;
        if body.len() > MAX_REPLY_BYTES {
            return Err(Failure::Other("auth-svc reply too large".into()));
        }
        match status.as_u16() {
            200 => {
                let reply: ValidateOk = serde_json::from_slice(&body)
                    .map_err(|_| Failure::Other("auth-svc 200 reply is not {valid,user}".into()))?;
                let now = token_cache::now_unix_millis() / 1000;
                match Identity::from_claims(&reply.user) {
                    Some(id) if reply.valid && !id.is_expired_at(now) => Ok(Cached::Allow(Arc::new(id))),
                    Some(_) if reply.valid => Ok(Cached::Deny(Rejection::Expired)),
                    _ => Ok(Cached::Deny(Rejection::Malformed)),
                }
            }
            401 => {
                let message = serde_json::from_slice::<ErrorReply>(&body).map(|e| e.message).unwrap_or_default();
                Ok(Cached::Deny(rejection_from_message(&message)))
            }
            other => Err(Failure::Other(format!("auth-svc answered {other}"))),
        }
    }
}

/// auth-svc's 401 message is the `Display` of its `Rejection`; the distinct ones map back, the
/// shared "Invalid token" becomes `bad_signature`.
fn rejection_from_message(message: &str) -> Rejection {
    [Rejection::UnknownKid, Rejection::Expired, Rejection::NotYetValid, Rejection::TooLarge, Rejection::Missing]
        .into_iter()
        .find(|r| r.to_string() == message)
        .unwrap_or(Rejection::BadSignature)
}

enum Failure {
    Timeout,
    Other(String),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::Timeout;
        }
        // reqwest's own message ("error sending request") hides the cause; the chain names it.
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_burst_then_refills() {
        let l = RateLimiter::new(10, 3);
        assert!(l.try_take() && l.try_take() && l.try_take());
        assert!(!l.try_take());
        std::thread::sleep(Duration::from_millis(150));
        assert!(l.try_take());
    }

    #[test]
    fn auth_messages_map_back_to_reasons() {
        assert_eq!(rejection_from_message("Token signed with an unknown key"), Rejection::UnknownKid);
        assert_eq!(rejection_from_message("Token has expired"), Rejection::Expired);
        assert_eq!(rejection_from_message("Invalid token"), Rejection::BadSignature);
        assert_eq!(rejection_from_message(""), Rejection::BadSignature);
    }
}
