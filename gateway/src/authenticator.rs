//! The decision for one request's credential, in order:
//!
//! 1. the verified-token cache (an identity whose key has left the keyring is not served);
//! 2. local verification with the keyring, when it holds the token's key id;
//! 3. a key id it does not hold: re-read our own keyring (coalesced, at most one read per
//!    `min_refresh_gap`) and wait for it up to `unknown_kid_wait`; a key id learnt that way is
//!    verified locally. Otherwise auth-svc is asked ([`Fallback`]). auth-svc saying "unknown
//!    key id" is final only once our own keyring has been re-read since the key id was first
//!    seen (or cannot change); until then the answer is 503, not 401: one auth-svc task is not
//!    proof during a rolling rotation;
//! 4. for an identity, the revocation list, on every request, cache hits included; before the
//!    first successful pull there is none to check against, and the answer is 503
//!    (`revocation_pending`), not a guess.

use std::time::{Duration, Instant};

use moka::future::Cache;
use platform::config::ConfigError;
use platform::keyring::store::{Freshness, KeyringStore};
use platform::keyring::{Keyring, Rejection, TokenRules, UnverifiedToken};
use std::sync::Arc;

use crate::config::file::JwtSection;
use crate::config::values::{in_range, millis, secs};
use crate::decision::{Decision, Unavailable};
use crate::fallback::Fallback;
use crate::metrics::{Metrics, RequestMetrics};
use crate::revocation_list::RevocationList;
use crate::token_cache::{TokenCache, TokenKey, token_key};
use crate::trace_context::{Cause, TraceIds};

/// How long a key id's first sighting is remembered (bounded: made-up key ids come and go).
const FIRST_SEEN_TTL: Duration = Duration::from_secs(120);
const KID_CACHE_CAPACITY: u64 = 10_000;

pub struct Authenticator {
    pub keyring: Arc<KeyringStore>,
    pub cache: TokenCache,
    pub fallback: Fallback,
    pub revocations: Arc<RevocationList>,
    pub rules: TokenRules,
    /// See `[jwt] unknown_kid_wait_ms`.
    pub unknown_kid_wait: Duration,
    /// See `[revocation] max_age_secs`.
    pub revocation_max_age: Option<Duration>,
    pub metrics: Metrics,
    hot: RequestMetrics,
    /// When each unknown key id was first seen.
    first_seen: Cache<Box<str>, Instant>,
    /// Key ids proven unknown (auth-svc and our freshly re-read keyring agree), for a while.
    unknown_kids: Cache<Box<str>, ()>,
}

/// Extracts the one bearer token from all `Authorization` values of a request. Zero values is
/// `missing`; more than one is `malformed` (exactly one credential per request).
pub fn credential<'a>(values: &[&'a [u8]]) -> Result<&'a str, Rejection> {
    match values {
        [] => Err(Rejection::Missing),
        [one] => {
            // The size cap applies before any decoding.
            if one.len() > platform::keyring::MAX_TOKEN_BYTES + 16 {
                return Err(Rejection::TooLarge);
            }
            let text = std::str::from_utf8(one).map_err(|_| Rejection::Malformed)?;
            platform::keyring::bearer_token(text)
        }
        _ => Err(Rejection::Malformed),
    }
}

/// `[jwt]`, validated: the token rules, and how the keyring is refreshed and waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtSettings {
    /// Clock leeway and longest lifetime accepted.
    pub rules: TokenRules,
    /// Time between two Secrets Manager reads of the keyring (ignored for `JWT_SECRET`).
    pub refresh_interval: Duration,
    /// Smallest gap between two reads (early re-reads for unknown key ids coalesce).
    pub min_refresh_gap: Duration,
    /// How long a request with an unknown key id waits for the re-read it triggered.
    pub unknown_kid_wait: Duration,
}

impl TryFrom<&JwtSection> for JwtSettings {
    type Error = ConfigError;

    fn try_from(s: &JwtSection) -> Result<Self, ConfigError> {
        Ok(Self {
            rules: TokenRules {
                leeway_secs: in_range("[jwt] leeway_secs", s.leeway_secs, 0..=60)?,
                max_lifetime_secs: in_range("[jwt] max_lifetime_secs", s.max_lifetime_secs, 60..=31_536_000)?,
            },
            refresh_interval: secs("[jwt] refresh_interval_secs", s.refresh_interval_secs, 1..=86_400)?,
            min_refresh_gap: millis("[jwt] min_refresh_gap_ms", s.min_refresh_gap_ms, 100..=600_000)?,
            unknown_kid_wait: millis("[jwt] unknown_kid_wait_ms", s.unknown_kid_wait_ms, 0..=30_000)?,
        })
    }
}

/// What [`Authenticator::new`] needs besides its parts, from `[jwt]`, `[revocation]` and
/// `[cache]`.
pub struct AuthenticatorSettings {
    pub rules: TokenRules,
    pub unknown_kid_wait: Duration,
    pub revocation_max_age: Option<Duration>,
    pub unknown_kid_ttl: Duration,
}

impl Authenticator {
    pub fn new(
        keyring: Arc<KeyringStore>,
        cache: TokenCache,
        fallback: Fallback,
        revocations: Arc<RevocationList>,
        settings: AuthenticatorSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            keyring,
            cache,
            fallback,
            revocations,
            rules: settings.rules,
            unknown_kid_wait: settings.unknown_kid_wait,
            revocation_max_age: settings.revocation_max_age,
            hot: RequestMetrics::new(&metrics),
            metrics,
            first_seen: Cache::builder().max_capacity(KID_CACHE_CAPACITY).time_to_live(FIRST_SEEN_TTL).build(),
            unknown_kids: Cache::builder()
                .max_capacity(KID_CACHE_CAPACITY)
                .time_to_live(settings.unknown_kid_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// The decision for the bearer token `raw`, of a request traced as `trace` (what a fallback
    /// call to auth-svc passes on).
    pub async fn authenticate(&self, raw: &str, trace: TraceIds) -> Decision {
        let key = token_key(raw);
        let (decision, cause) = match self.cached(&key).await {
            Some(hit) => (hit, Cause::CacheHit),
            None => {
                // Boxed: the decision off the cache (verification, the fallback's HTTP call) is
                // a large future; inline, every request's future would carry and copy it.
                let deciding = Box::pin(crate::trace_context::deciding(trace, self.decide(key, raw)));
                let (decided, cause) = deciding.await;
                self.cache.insert(key, decided.clone()).await;
                (decided, cause)
            }
        };
        let decision = self.check_revocation(decision);
        crate::trace_context::record_decision(&decision, cause);
        decision
    }

    /// A cache hit still valid under the current keyring.
    async fn cached(&self, key: &TokenKey) -> Option<Decision> {
        if !self.cache.is_enabled() {
            return None;
        }
        let hit = self.cache.get(key).await;
        let hit = match hit {
            Some(Decision::Allow(id)) if id.local_kid.as_deref().is_some_and(|kid| !self.holds(kid)) => {
                // Its key was dropped by a refresh: decide again (the token will be refused
                // unless the key comes back).
                self.cache.invalidate(key).await;
                None
            }
            other => other,
        };
        if hit.is_some() {
            self.hot.cache_hit.inc()
        } else {
            self.hot.cache_miss.inc()
        }
        hit
    }

    fn holds(&self, kid: &str) -> bool {
        self.keyring.holds(kid)
    }

    fn check_revocation(&self, decision: Decision) -> Decision {
        let Decision::Allow(id) = &decision else { return decision };
        if !self.revocations.is_pulled() {
            return Decision::Unavailable(Unavailable::RevocationPending);
        }
        if let Some(max_age) = self.revocation_max_age
            && self.revocations.age().is_none_or(|age| age > max_age)
        {
            return Decision::Unavailable(Unavailable::RevocationListStale);
        }
        if self.revocations.is_revoked(id) {
            return Decision::Deny(Rejection::Revoked);
        }
        decision
    }

    async fn decide(&self, key: TokenKey, raw: &str) -> Decision {
        let token = match UnverifiedToken::parse(raw) {
            Ok(t) => t,
            Err(r) => return Decision::Deny(r),
        };
        let Some(ring) = self.keyring.current() else { return Decision::Unavailable(Unavailable::NoKeyring) };
        if ring.contains(token.kid()) {
            return self.verify_locally(&ring, &token);
        }
        self.decide_unknown_kid(key, &token).await
    }

    fn verify_locally(&self, ring: &Keyring, token: &UnverifiedToken<'_>) -> Decision {
        match ring.verify(token, &self.rules) {
            Ok(claims) => Decision::from_claims(&claims, Some(token.kid())),
            Err(r) => Decision::Deny(r),
        }
    }

    async fn decide_unknown_kid(&self, key: TokenKey, token: &UnverifiedToken<'_>) -> Decision {
        let kid = token.kid();
        if self.unknown_kids.contains_key(kid) {
            return Decision::Deny(Rejection::UnknownKid);
        }
        let first_seen = self.first_seen.get_with(Box::from(kid), async { Instant::now() }).await;
        let freshness = self.keyring.refreshed_since(first_seen, self.unknown_kid_wait).await;
        if let Freshness::Refreshed(ring) = &freshness
            && ring.contains(kid)
        {
            return self.verify_locally(ring, token);
        }
        match (self.fallback.validate(key, token.raw()).await, &freshness) {
            // Two witnesses agree (our keyring, re-read or fixed, and auth-svc): remember it.
            (Decision::Deny(Rejection::UnknownKid), Freshness::Refreshed(_) | Freshness::Fixed(_)) => {
                self.unknown_kids.insert(Box::from(kid), ()).await;
                Decision::Deny(Rejection::UnknownKid)
            }
            // One auth-svc task is not proof while our own keyring may be behind.
            (Decision::Deny(Rejection::UnknownKid), Freshness::Pending) => {
                Decision::Unavailable(Unavailable::KeyringPending)
            }
            // auth-svc could not be asked, but our keyring was re-read after the key id was
            // first seen and lacks it: that is an answer (not remembered beyond this token).
            (Decision::Unavailable(_), Freshness::Refreshed(_)) => Decision::Deny(Rejection::UnknownKid),
            (answer, _) => answer,
        }
    }
}
