//! The verified-token cache: SHA-256 of the token (the raw token is never kept) → the decision.
//! An allowed entry expires at the token's `exp` at the latest (moka `Expiry`, checked again on
//! read); a rejection lives only `negative_ttl`. A hit does no signature work.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::future::Cache;
use platform::config::ConfigError;
use sha2::{Digest, Sha256};

use crate::config::file::CacheSection;
use crate::config::values::secs;
use crate::decision::Decision;

/// `[cache]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheSettings {
    /// Most entries; `None` disables the cache (`enabled = false` or `capacity = 0`).
    pub capacity: Option<u64>,
    pub expiry: DecisionExpiry,
    /// How long a key id proven unknown is refused without asking again (the authenticator's).
    pub unknown_kid_ttl: Duration,
}

impl TryFrom<&CacheSection> for TokenCacheSettings {
    type Error = ConfigError;

    fn try_from(s: &CacheSection) -> Result<Self, ConfigError> {
        Ok(Self {
            capacity: (s.enabled && s.capacity > 0).then_some(s.capacity),
            expiry: DecisionExpiry {
                max_ttl: secs("[cache] max_ttl_secs", s.max_ttl_secs, 1..=86_400)?,
                negative_ttl: secs("[cache] negative_ttl_secs", s.negative_ttl_secs, 0..=300)?,
            },
            unknown_kid_ttl: secs("[cache] unknown_kid_ttl_secs", s.unknown_kid_ttl_secs, 0..=3600)?,
        })
    }
}

pub type TokenKey = [u8; 32];

/// The cache key of a token.
pub fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

pub fn now_unix_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Per-entry lifetime: until `exp` (capped at `max_ttl`) for identities, `negative_ttl` for
/// rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionExpiry {
    pub max_ttl: Duration,
    pub negative_ttl: Duration,
}

impl DecisionExpiry {
    pub fn ttl(&self, value: &Decision) -> Duration {
        match value {
            Decision::Allow(id) => {
                let remaining_ms = id.exp.saturating_mul(1000).saturating_sub(now_unix_millis()).max(0);
                Duration::from_millis(remaining_ms as u64).min(self.max_ttl)
            }
            Decision::Deny(_) => self.negative_ttl,
            // Never stored (see `TokenCache::insert`); gone at once if it were.
            Decision::Unavailable(_) => Duration::ZERO,
        }
    }
}

impl Expiry<TokenKey, Decision> for DecisionExpiry {
    fn expire_after_create(&self, _key: &TokenKey, value: &Decision, _created_at: Instant) -> Option<Duration> {
        Some(self.ttl(value))
    }

    fn expire_after_update(
        &self,
        _key: &TokenKey,
        value: &Decision,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(value))
    }
}

/// Builds a bounded moka cache with [`DecisionExpiry`].
pub fn build(capacity: u64, expiry: DecisionExpiry) -> Cache<TokenKey, Decision> {
    Cache::builder().max_capacity(capacity).expire_after(expiry).build()
}

/// The cache, or nothing at all when disabled (benchmarks compare both).
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Cache<TokenKey, Decision>>,
    negative_ttl: Duration,
}

impl TokenCache {
    pub fn new(capacity: Option<u64>, expiry: DecisionExpiry) -> Self {
        Self { inner: capacity.map(|c| build(c, expiry)), negative_ttl: expiry.negative_ttl }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// A cached decision still valid now. An identity past its `exp` is never returned, even
    /// if moka has not evicted it yet.
    pub async fn get(&self, key: &TokenKey) -> Option<Decision> {
        let cache = self.inner.as_ref()?;
        match cache.get(key).await? {
            Decision::Allow(id) if id.is_expired_at(now_unix_millis() / 1000) => {
                cache.invalidate(key).await;
                None
            }
            hit => Some(hit),
        }
    }

    /// Drops the entry of `key` (its key left the keyring).
    pub async fn invalidate(&self, key: &TokenKey) {
        if let Some(cache) = &self.inner {
            cache.invalidate(key).await;
        }
    }

    /// Caches a final decision; `Unavailable` is never cached.
    pub async fn insert(&self, key: TokenKey, value: Decision) {
        let Some(cache) = &self.inner else { return };
        match value {
            Decision::Unavailable(_) => return,
            Decision::Deny(_) if self.negative_ttl.is_zero() => return,
            _ => {}
        }
        cache.insert(key, value).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Identity, Unavailable};
    use platform::keyring::{Claims, Rejection};
    use std::sync::Arc;

    fn identity(exp_in: i64) -> Arc<Identity> {
        let now = now_unix_millis() / 1000;
        let claims = Claims::new(1, "u", "u@example.com", now, exp_in);
        Arc::new(Identity::from_claims(&claims, Some("k")).unwrap())
    }

    const EXPIRY: DecisionExpiry =
        DecisionExpiry { max_ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) };

    #[test]
    fn entries_never_outlive_exp_nor_max_ttl() {
        let ttl = EXPIRY.ttl(&Decision::Allow(identity(2)));
        assert!(ttl <= Duration::from_secs(2) && ttl > Duration::from_millis(500), "{ttl:?}");
        assert_eq!(EXPIRY.ttl(&Decision::Allow(identity(10_000))), Duration::from_secs(300));
        assert_eq!(EXPIRY.ttl(&Decision::Allow(identity(-10))), Duration::ZERO);
        assert_eq!(EXPIRY.ttl(&Decision::Deny(Rejection::Expired)), Duration::from_secs(5));
    }

    #[test]
    fn keys_are_hashes_not_tokens() {
        let k = token_key("abc.def.ghi");
        assert_eq!(k.len(), 32);
        assert_ne!(&k[..11], b"abc.def.ghi");
        assert_eq!(k, token_key("abc.def.ghi"));
    }

    #[tokio::test]
    async fn expired_identity_is_not_served_from_cache() {
        let cache = TokenCache::new(Some(100), EXPIRY);
        let key = token_key("t");
        cache.insert(key, Decision::Allow(identity(1))).await;
        assert!(cache.get(&key).await.is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(cache.get(&key).await.is_none());
    }

    #[tokio::test]
    async fn unavailable_is_never_cached() {
        let cache = TokenCache::new(Some(100), EXPIRY);
        let key = token_key("t");
        cache.insert(key, Decision::Unavailable(Unavailable::AuthUnavailable)).await;
        assert!(cache.get(&key).await.is_none());
    }

    #[test]
    fn the_section_sets_capacity_and_lifetimes() {
        let s = TokenCacheSettings::try_from(&CacheSection::default()).unwrap();
        assert_eq!(s.capacity, Some(100_000));
        assert_eq!(s.expiry, EXPIRY);
        assert_eq!(s.unknown_kid_ttl, Duration::from_secs(30));
        for off in [
            CacheSection { enabled: false, ..CacheSection::default() },
            CacheSection { capacity: 0, ..CacheSection::default() },
        ] {
            assert_eq!(TokenCacheSettings::try_from(&off).unwrap().capacity, None);
        }
        let long = CacheSection { negative_ttl_secs: 301, ..CacheSection::default() };
        assert_eq!(TokenCacheSettings::try_from(&long).unwrap_err().key, "[cache] negative_ttl_secs");
    }

    #[tokio::test]
    async fn disabled_cache_stores_nothing() {
        let cache = TokenCache::new(None, EXPIRY);
        let key = token_key("t");
        cache.insert(key, Decision::Allow(identity(60))).await;
        assert!(cache.get(&key).await.is_none());
        assert!(!cache.is_enabled());
    }
}
