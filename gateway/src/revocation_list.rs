//! The revoked tokens, pulled from auth-svc's `GET /internal/revocations` in the background
//! every `[revocation] poll_interval_secs` and checked on every request, cache hits included.
//!
//! The list is an immutable snapshot behind `arc-swap`: a request reads it without a lock; a
//! pull that brings changes builds the next snapshot and swaps it in. Only what changed since
//! the last cursor is transferred. Entries are dropped once their token can no longer be valid
//! (`exp`). When auth-svc cannot be reached the last list stays in force; its age is a metric,
//! and `[revocation] max_age_secs` can make the gateway fail closed (503) when it is too old.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use platform::config::ConfigError;
use platform::revocation::{DEFAULT_PAGE, FEED_PATH, Revocation, RevocationPage};

use crate::auth_client::{AuthClient, describe};
use crate::config::file::RevocationSection;
use crate::config::values::secs;
use crate::decision::{Identity, JtiKey, jti_key};
use crate::metrics::Metrics;
use crate::token_cache::now_unix_millis;

/// `[revocation]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationSettings {
    /// Time between two pulls.
    pub poll_interval: Duration,
    /// A list older than this makes requests with a token fail closed (503); `None`: never.
    pub max_age: Option<Duration>,
}

impl TryFrom<&RevocationSection> for RevocationSettings {
    type Error = ConfigError;

    fn try_from(s: &RevocationSection) -> Result<Self, ConfigError> {
        let poll_interval = secs("[revocation] poll_interval_secs", s.poll_interval_secs, 1..=3600)?;
        let max_age = secs("[revocation] max_age_secs", s.max_age_secs, 0..=86_400)?;
        if !max_age.is_zero() && max_age <= poll_interval {
            return Err(ConfigError::new(
                "[revocation] max_age_secs",
                "must be 0 (off) or longer than poll_interval_secs, or every request fails closed",
            ));
        }
        Ok(Self { poll_interval, max_age: (!max_age.is_zero()).then_some(max_age) })
    }
}

/// One snapshot of the list. About 26 bytes per revoked token (key, `exp`, table overhead):
/// 100,000 live revocations take under 4 MiB.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    /// Revoked `jti`s → their token's `exp`.
    tokens: HashMap<JtiKey, i64>,
    /// User id → (`issued_before`, entry `exp`): tokens with `iat < issued_before` are revoked.
    users: HashMap<i64, (i64, i64)>,
}

impl RevocationSet {
    /// Whether `id`'s token is revoked.
    pub fn is_revoked(&self, id: &Identity) -> bool {
        self.tokens.contains_key(&id.jti) || self.users.get(&id.user_id).is_some_and(|(before, _)| id.iat < *before)
    }

    pub fn len(&self) -> usize {
        self.tokens.len() + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an entry (a later cut-off of the same user replaces an earlier one).
    pub fn apply(&mut self, entry: &Revocation) {
        match entry {
            Revocation::Token { jti, exp, .. } => {
                self.tokens.insert(jti_key(jti), *exp);
            }
            Revocation::User { user_id, issued_before, exp, .. } => {
                let slot = self.users.entry(*user_id).or_insert((*issued_before, *exp));
                if *issued_before >= slot.0 {
                    *slot = (*issued_before, (*exp).max(slot.1));
                }
            }
        }
    }

    /// Drops entries whose tokens have all expired at `now` (unix seconds).
    pub fn purge_expired(&mut self, now: i64) -> usize {
        let before = self.len();
        self.tokens.retain(|_, exp| *exp > now);
        self.users.retain(|_, (_, exp)| *exp > now);
        before - self.len()
    }

    fn next_expiry(&self) -> Option<i64> {
        self.tokens.values().chain(self.users.values().map(|(_, e)| e)).min().copied()
    }
}

/// The list in force, shared by every request.
pub struct RevocationList {
    current: ArcSwap<RevocationSet>,
    /// Milliseconds after `anchor` of the last successful pull; 0 = never.
    pulled_at_ms: AtomicU64,
    anchor: Instant,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(RevocationSet::default()),
            pulled_at_ms: AtomicU64::new(0),
            anchor: Instant::now(),
        }
    }
}

impl RevocationList {
    /// Whether `id`'s token is revoked, by the list in force.
    pub fn is_revoked(&self, id: &Identity) -> bool {
        self.current.load().is_revoked(id)
    }

    /// Time since the last successful pull; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.pulled_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.anchor.elapsed().saturating_sub(Duration::from_millis(ms))),
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mark_pulled(&self) {
        let ms = u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.pulled_at_ms.store(ms, Ordering::Relaxed);
    }

    /// Installs `entries` and drops expired ones, building a new snapshot only when something
    /// changes.
    pub fn update(&self, entries: &[Revocation], now: i64) {
        let current = self.current.load();
        let expiring = current.next_expiry().is_some_and(|e| e <= now);
        if entries.is_empty() && !expiring {
            return;
        }
        let mut next = RevocationSet::clone(&current);
        for e in entries {
            next.apply(e);
        }
        next.purge_expired(now);
        self.current.store(Arc::new(next));
    }
}

/// Background service pulling the feed.
pub struct RevocationPoller {
    pub client: AuthClient,
    pub list: Arc<RevocationList>,
    pub interval: Duration,
    pub metrics: Metrics,
}

impl RevocationPoller {
    /// Pulls every page after `cursor`; returns the new cursor. Starts again from 0 when
    /// auth-svc's log is behind the cursor (its database was replaced).
    pub async fn pull(&self, mut cursor: i64) -> Result<i64, String> {
        let mut restarted = false;
        loop {
            let url = self.client.url(&format!("{FEED_PATH}?after={cursor}&limit={DEFAULT_PAGE}"));
            let response = self.client.http.get(url).send().await.map_err(describe)?;
            if !response.status().is_success() {
                return Err(format!("auth-svc answered {}", response.status().as_u16()));
            }
            let page: RevocationPage =
                response.json().await.map_err(|e| format!("revocation page is not valid: {}", describe(e)))?;
            if page.latest < cursor && !restarted {
                tracing::warn!(cursor, latest = page.latest, "revocation log is behind our cursor; pulling it whole");
                cursor = 0;
                restarted = true;
                continue;
            }
            let full = page.revocations.len() >= DEFAULT_PAGE as usize;
            self.list.update(&page.revocations, now_unix_millis() / 1000);
            cursor = page.next_cursor.max(cursor);
            if !full {
                return Ok(cursor);
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RevocationPoller {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut cursor = 0;
        loop {
            match self.pull(cursor).await {
                Ok(next) => {
                    cursor = next;
                    self.list.mark_pulled();
                    self.metrics.revocation_pulls.with_label_values(&["success"]).inc();
                }
                Err(e) => {
                    self.metrics.revocation_pulls.with_label_values(&["failure"]).inc();
                    tracing::warn!(error = %e, "revocation pull failed; keeping the last list");
                    // Expired entries still go, so the list does not outlive its tokens.
                    self.list.update(&[], now_unix_millis() / 1000);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use platform::keyring::Claims;

    use super::*;

    fn identity(user_id: i64, iat: i64) -> (Identity, String) {
        let claims = Claims::new(user_id, "u", "u@example.com", iat, 600);
        (Identity::from_claims(&claims, None).unwrap(), claims.jti)
    }

    #[test]
    fn the_maximum_age_is_off_or_longer_than_the_poll_interval() {
        let s = RevocationSettings::try_from(&RevocationSection::default()).unwrap();
        assert_eq!(s, RevocationSettings { poll_interval: Duration::from_secs(2), max_age: None });
        let strict = RevocationSection { max_age_secs: 30, ..RevocationSection::default() };
        assert_eq!(RevocationSettings::try_from(&strict).unwrap().max_age, Some(Duration::from_secs(30)));
        let too_short = RevocationSection { max_age_secs: 2, ..RevocationSection::default() };
        assert_eq!(RevocationSettings::try_from(&too_short).unwrap_err().key, "[revocation] max_age_secs");
    }

    #[test]
    fn tokens_and_user_cutoffs_are_revoked() {
        let list = RevocationList::default();
        let (a, a_jti) = identity(1, 1000);
        let (b, _) = identity(2, 1000);
        let (b_later, _) = identity(2, 1050);
        assert!(!list.is_revoked(&a));
        list.update(
            &[
                Revocation::Token { seq: 1, user_id: 1, jti: a_jti, exp: 5000 },
                Revocation::User { seq: 2, user_id: 2, issued_before: 1001, exp: 6000 },
            ],
            100,
        );
        assert!(list.is_revoked(&a));
        assert!(list.is_revoked(&b), "iat 1000 < cut-off 1001");
        assert!(!list.is_revoked(&b_later), "issued after the cut-off");
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn entries_go_when_their_tokens_have_expired() {
        let list = RevocationList::default();
        let (a, a_jti) = identity(1, 1000);
        list.update(&[Revocation::Token { seq: 1, user_id: 1, jti: a_jti, exp: 2000 }], 100);
        list.update(&[], 1999);
        assert!(list.is_revoked(&a));
        list.update(&[], 2000);
        assert!(list.is_empty());
    }

    #[test]
    fn a_later_cutoff_wins_and_an_earlier_one_does_not_shorten_it() {
        let mut set = RevocationSet::default();
        set.apply(&Revocation::User { seq: 1, user_id: 7, issued_before: 100, exp: 900 });
        set.apply(&Revocation::User { seq: 2, user_id: 7, issued_before: 200, exp: 1000 });
        set.apply(&Revocation::User { seq: 3, user_id: 7, issued_before: 150, exp: 950 });
        assert_eq!(set.users[&7], (200, 1000));
    }

    #[test]
    fn a_hundred_thousand_revocations_fit_in_a_few_mebibytes() {
        let mut set = RevocationSet::default();
        for i in 0..100_000 {
            set.apply(&Revocation::Token { seq: i, user_id: 1, jti: format!("{i:032x}"), exp: i64::MAX });
        }
        // hashbrown: one control byte per bucket plus (key, value) per bucket.
        let buckets = set.tokens.capacity().next_power_of_two();
        let bytes = buckets * (1 + std::mem::size_of::<(JtiKey, i64)>());
        assert!(bytes < 16 << 20, "{bytes} bytes");
    }
}
