//! Asking auth-svc `POST /auth/validate` about a token whose key id the gateway does not hold
//! (see [`crate::authenticator`] for when). Guarded so that a flood of tokens with made-up key
//! ids cannot become a flood on auth-svc:
//! - one call per token at a time: concurrent requests with the same token share the one call
//!   in flight (moka's `entry().or_try_insert_with`), and its answer is kept briefly;
//! - a global rate limit (`governor` GCRA); past it the answer is 503, never fail-open;
//! - a short deadline per call; a slow or unreachable auth-svc is 503 too.
//!
//! auth-svc's 401 body names the cause in its machine-readable `reason` field.

use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use moka::future::Cache;
use platform::keyring::{Claims, Rejection};
use serde::Deserialize;
use tracing::Instrument as _;

use crate::auth_client::{AuthClient, AuthSettings, MAX_VALIDATE_REPLY_BYTES, describe};
use crate::decision::{Decision, Unavailable};
use crate::metrics::Metrics;
use crate::token_cache::{self, DecisionExpiry, TokenKey};

#[derive(Deserialize)]
struct ValidateOk {
    valid: bool,
    user: Claims,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    reason: Option<String>,
}

/// How long an answer is reused for identical tokens, independent of the main token cache, so
/// concurrent requests with one token share one call even with that cache disabled.
const ANSWER_TTL: Duration = Duration::from_secs(1);

pub struct Fallback {
    client: AuthClient,
    deadline: Duration,
    limiter: DefaultDirectRateLimiter,
    answers: Cache<TokenKey, Decision>,
    metrics: Metrics,
}

impl Fallback {
    /// The fallback through `client`, with `[auth]`'s deadline and rate limit.
    pub fn new(settings: &AuthSettings, client: AuthClient, metrics: Metrics) -> Self {
        let expiry = DecisionExpiry { max_ttl: ANSWER_TTL, negative_ttl: ANSWER_TTL };
        let quota = Quota::per_second(settings.rate_limit_per_sec).allow_burst(settings.rate_limit_burst);
        Self {
            client,
            deadline: settings.deadline,
            limiter: RateLimiter::direct(quota),
            answers: token_cache::build(10_000, expiry),
            metrics,
        }
    }

    /// auth-svc's answer for `token` (cache key `key`): `Allow`, `Deny` with auth-svc's reason,
    /// or `Unavailable` (rate limited, unreachable, too slow, unexpected answer).
    pub async fn validate(&self, key: TokenKey, token: &str) -> Decision {
        let entry = self
            .answers
            .entry(key)
            .or_try_insert_with(async {
                match self.call(token).await {
                    Decision::Unavailable(u) => Err(u),
                    answer => Ok(answer),
                }
            })
            .await;
        match entry {
            Ok(entry) => {
                if !entry.is_fresh() {
                    self.metrics.coalesced_waiters.inc();
                }
                entry.into_value()
            }
            Err(u) => Decision::Unavailable(*u),
        }
    }

    async fn call(&self, token: &str) -> Decision {
        if self.limiter.check().is_err() {
            self.metrics.fallback_calls.with_label_values(&["rate_limited"]).inc();
            return Decision::Unavailable(Unavailable::RateLimited);
        }
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.deadline, self.exchange(token)).await;
        self.metrics.fallback_duration.observe(start.elapsed().as_secs_f64());
        let (label, decision) = match outcome {
            Err(_) | Ok(Err(Failure::Timeout)) => ("timeout", Decision::Unavailable(Unavailable::AuthUnavailable)),
            Ok(Err(Failure::Other(reason))) => {
                let trace_id = crate::trace_context::current_trace_id().map(tracing::field::display);
                tracing::warn!(%reason, trace_id, "auth-svc fallback failed");
                ("error", Decision::Unavailable(Unavailable::AuthUnavailable))
            }
            Ok(Ok(d @ Decision::Allow(_))) => ("valid", d),
            Ok(Ok(d)) => ("invalid", d),
        };
        self.metrics.fallback_calls.with_label_values(&[label]).inc();
        decision
    }

    async fn exchange(&self, token: &str) -> Result<Decision, Failure> {
        let url = self.client.url("/auth/validate");
        crate::trace_context::note_fallback();
        let (span, trace_headers) = crate::trace_context::fallback_span();
        let response = self
            .client
            .http
            .post(url)
            .bearer_auth(token)
            .headers(trace_headers)
            .send()
            .instrument(span.clone())
            .await
            .map_err(Failure::from)?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if response.content_length().is_some_and(|n| n > MAX_VALIDATE_REPLY_BYTES as u64) {
            return Err(Failure::Other("auth-svc reply too large".into()));
        }
        let body = response.bytes().await.map_err(Failure::from)?;
        if body.len() > MAX_VALIDATE_REPLY_BYTES {
            return Err(Failure::Other("auth-svc reply too large".into()));
        }
        match status.as_u16() {
            200 => {
                let reply: ValidateOk = serde_json::from_slice(&body)
                    .map_err(|_| Failure::Other("auth-svc 200 reply is not {valid,user}".into()))?;
                let now = token_cache::now_unix_millis() / 1000;
                Ok(match Decision::from_claims(&reply.user, None) {
                    _ if !reply.valid => Decision::Deny(Rejection::Malformed),
                    Decision::Allow(id) if id.is_expired_at(now) => Decision::Deny(Rejection::Expired),
                    d => d,
                })
            }
            401 => {
                let reason = serde_json::from_slice::<ErrorReply>(&body).ok().and_then(|e| e.reason);
                // An auth-svc without reasons: a refusal whose cause we cannot tell.
                Ok(Decision::Deny(
                    reason.as_deref().and_then(Rejection::from_reason).unwrap_or(Rejection::BadSignature),
                ))
            }
            other => Err(Failure::Other(format!("auth-svc answered {other}"))),
        }
    }
}

enum Failure {
    Timeout,
    Other(String),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() { Self::Timeout } else { Self::Other(describe(e)) }
    }
}
