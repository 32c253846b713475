//! The revoked tokens, pulled from auth-svc's `GET /internal/revocations` in the background
//! every `[revocation] poll_interval_secs` and checked on every request, cache hits included.
//!
//! The list is one set behind a read-write lock, updated in place: a pulled page costs a write
//! lock and one insert per entry (time and memory linear in the changes, never a copy of the
//! whole list), a request a read lock and two hash lookups. Only what changed since the last
//! cursor is transferred. Entries are kept until `exp + RETAIN_AFTER_EXP_SECS` (a token is
//! accepted until `exp + leeway`) and purged in one pass at most every [`PURGE_INTERVAL_SECS`].
//!
//! Until the first successful pull the gateway cannot tell a revoked token from a good one: it
//! fails closed (503 `revocation_pending`, `/ready` 503). When auth-svc cannot be reached later
//! the last list stays in force; its age is a metric, and `[revocation] max_age_secs` can make
//! the gateway fail closed (503) when it is too old.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use platform::config::ConfigError;
use platform::revocation::{DEFAULT_PAGE, FEED_PATH, RETAIN_AFTER_EXP_SECS, Revocation, RevocationPage};

use crate::auth_client::{AuthClient, describe};
use crate::config::file::RevocationSection;
use crate::config::values::secs;
use crate::decision::{Identity, JtiKey, jti_key};
use crate::metrics::Metrics;
use crate::token_cache::now_unix_millis;

/// Smallest time between two purges of expired entries (a purge visits every entry). An
/// expired entry left a little longer only refuses tokens that are refused anyway.
pub const PURGE_INTERVAL_SECS: i64 = 60;

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

/// The entries in force. 25 bytes per table bucket (16-byte key, `exp`, a control byte), with
/// the table between half and seven eighths full: 100,000 live revocations take about 4.3 MiB of
/// resident memory (measured by the test below).
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    /// Revoked `jti`s → their token's `exp`.
    tokens: HashMap<JtiKey, i64>,
    /// User id → (`issued_before`, entry `exp`): tokens with `iat < issued_before` are revoked.
    users: HashMap<i64, (i64, i64)>,
    /// Revoked API keys ([`jti_key`] of the `client_id`) → the `exp` of their last token.
    api_keys: HashMap<JtiKey, i64>,
}

impl RevocationSet {
    /// Whether `id`'s token is revoked.
    pub fn is_revoked(&self, id: &Identity) -> bool {
        self.tokens.contains_key(&id.jti)
            || self.users.get(&id.user_id).is_some_and(|(before, _)| id.iat < *before)
            || id.client.is_some_and(|client| self.api_keys.contains_key(&client))
    }

    pub fn len(&self) -> usize {
        self.tokens.len() + self.users.len() + self.api_keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an entry in place (a later cut-off of the same user replaces an earlier one).
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
            Revocation::ApiKey { client_id, exp, .. } => {
                let slot = self.api_keys.entry(jti_key(client_id)).or_insert(*exp);
                *slot = (*slot).max(*exp);
            }
        }
    }

    /// Drops entries no accepted token can match at `now` (unix seconds): those with
    /// `exp + RETAIN_AFTER_EXP_SECS <= now`. Returns how many went.
    pub fn purge_expired(&mut self, now: i64) -> usize {
        let before = self.len();
        let live = |exp: i64| exp.saturating_add(RETAIN_AFTER_EXP_SECS) > now;
        self.tokens.retain(|_, exp| live(*exp));
        self.users.retain(|_, (_, exp)| live(*exp));
        self.api_keys.retain(|_, exp| live(*exp));
        self.tokens.shrink_to(self.tokens.len() * 2);
        self.users.shrink_to(self.users.len() * 2);
        self.api_keys.shrink_to(self.api_keys.len() * 2);
        before - self.len()
    }
}

/// The list in force, shared by every request.
pub struct RevocationList {
    set: RwLock<RevocationSet>,
    /// Milliseconds after `anchor` of the last successful pull; 0 = never.
    pulled_at_ms: AtomicU64,
    /// Unix seconds of the last purge.
    purged_at: AtomicI64,
    anchor: Instant,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self {
            set: RwLock::default(),
            pulled_at_ms: AtomicU64::new(0),
            purged_at: AtomicI64::new(0),
            anchor: Instant::now(),
        }
    }
}

impl RevocationList {
    /// Whether `id`'s token is revoked, by the list in force.
    pub fn is_revoked(&self, id: &Identity) -> bool {
        // A panic while holding the lock leaves a set that is still consistent (every write
        // is one map operation): keep using it.
        self.set.read().unwrap_or_else(PoisonError::into_inner).is_revoked(id)
    }

    /// Whether a pull has succeeded yet. Before that no token can be checked.
    pub fn is_pulled(&self) -> bool {
        self.pulled_at_ms.load(Ordering::Relaxed) != 0
    }

    /// Time since the last successful pull; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.pulled_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.anchor.elapsed().saturating_sub(Duration::from_millis(ms))),
        }
    }

    /// How long the list has not been known current: since the last successful pull, or
    /// since the list was created (the process start) before the first one, so that a gateway
    /// that never pulls ages like one that stopped pulling.
    pub fn unknown_for(&self) -> Duration {
        self.age().unwrap_or_else(|| self.anchor.elapsed())
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.set.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a successful pull.
    pub fn mark_pulled(&self) {
        let ms = u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.pulled_at_ms.store(ms, Ordering::Relaxed);
    }

    /// Inserts `entries` in place: one write lock, one map operation per entry. Returns the
    /// number of entries applied.
    pub fn update(&self, entries: &[Revocation]) -> usize {
        if entries.is_empty() {
            return 0;
        }
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        for e in entries {
            set.apply(e);
        }
        entries.len()
    }

    /// Purges expired entries (see [`RevocationSet::purge_expired`]) when the last purge is at
    /// least [`PURGE_INTERVAL_SECS`] before `now` (unix seconds); returns how many went.
    pub fn purge_if_due(&self, now: i64) -> usize {
        let last = self.purged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_INTERVAL_SECS {
            return 0;
        }
        self.purged_at.store(now, Ordering::Relaxed);
        self.purge_expired(now)
    }

    /// Purges expired entries now; returns how many went.
    pub fn purge_expired(&self, now: i64) -> usize {
        self.set.write().unwrap_or_else(PoisonError::into_inner).purge_expired(now)
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
            self.list.update(&page.revocations);
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
        let began = std::time::Instant::now();
        loop {
            match self.pull(cursor).await {
                Ok(next) => {
                    cursor = next;
                    if !self.list.is_pulled() {
                        // The line that answers the start's "not pulled yet" ones.
                        tracing::info!(
                            revocations = self.list.len(),
                            "revocation list pulled; requests with a token are no longer refused for the lack of it"
                        );
                    }
                    self.list.mark_pulled();
                    self.metrics.revocation_pulls.with_label_values(&["success"]).inc();
                }
                Err(e) => {
                    self.metrics.revocation_pulls.with_label_values(&["failure"]).inc();
                    if self.list.is_pulled() {
                        tracing::warn!(error = %e, "revocation pull failed; keeping the last list");
                    } else if began.elapsed() < platform::keyring::store::STARTUP_GRACE {
                        // auth-svc is usually starting beside us: not worth a warning yet.
                        tracing::info!(error = %e, "revocation list not pulled yet; retrying (requests with a token get 503)");
                    } else {
                        tracing::warn!(error = %e, "revocation list still not pulled; requests with a token get 503");
                    }
                }
            }
            // Expired entries go whether or not the pull worked, so the list does not outlive
            // its tokens.
            self.list.purge_if_due(now_unix_millis() / 1000);
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
        list.update(&[
            Revocation::Token { seq: 1, user_id: 1, jti: a_jti, exp: 5000 },
            Revocation::User { seq: 2, user_id: 2, issued_before: 1001, exp: 6000 },
        ]);
        assert!(list.is_revoked(&a));
        assert!(list.is_revoked(&b), "iat 1000 < cut-off 1001");
        assert!(!list.is_revoked(&b_later), "issued after the cut-off");
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn an_api_key_revocation_refuses_every_token_naming_the_key_and_only_those() {
        let list = RevocationList::default();
        let token = |client: Option<&str>, iat| {
            let mut claims = Claims::new(3, "u", "u@example.com", iat, 600);
            claims.client_id = client.map(str::to_owned);
            Identity::from_claims(&claims, None).unwrap()
        };
        let (old, new, other, login) =
            (token(Some("k1"), 1000), token(Some("k1"), 9000), token(Some("k2"), 1000), token(None, 1000));
        list.update(&[Revocation::ApiKey { seq: 1, user_id: 3, client_id: "k1".into(), exp: 5000 }]);
        assert!(list.is_revoked(&old) && list.is_revoked(&new), "every token of the key, whenever issued");
        assert!(!list.is_revoked(&other) && !list.is_revoked(&login), "other keys and the user's login tokens stay");
        list.purge_expired(5000 + RETAIN_AFTER_EXP_SECS - 1);
        assert!(list.is_revoked(&old));
        assert_eq!(list.purge_expired(5000 + RETAIN_AFTER_EXP_SECS), 1);
    }

    /// A token is accepted until `exp + leeway` (leeway at most 60 s): its revocation must
    /// hold until then, and may go right after.
    #[test]
    fn entries_stay_through_exp_plus_the_maximum_leeway() {
        let list = RevocationList::default();
        let (a, a_jti) = identity(1, 1000);
        let (b, _) = identity(2, 1000);
        list.update(&[
            Revocation::Token { seq: 1, user_id: 1, jti: a_jti, exp: 2000 },
            Revocation::User { seq: 2, user_id: 2, issued_before: 1001, exp: 2000 },
        ]);
        for now in [1999, 2000, 2000 + RETAIN_AFTER_EXP_SECS - 1] {
            list.purge_expired(now);
            assert!(list.is_revoked(&a) && list.is_revoked(&b), "dropped at {now}, before exp + leeway");
        }
        assert_eq!(list.purge_expired(2000 + RETAIN_AFTER_EXP_SECS), 2);
        assert!(list.is_empty());
    }

    /// No `[jwt] leeway_secs` the gateway accepts outlasts the entries it keeps.
    #[test]
    fn no_leeway_outlasts_the_revocations() {
        use crate::authenticator::JwtSettings;
        use crate::config::file::JwtSection;
        let leeway =
            |secs: i64| JwtSettings::try_from(&JwtSection { leeway_secs: secs as u64, ..JwtSection::default() });
        assert_eq!(leeway(RETAIN_AFTER_EXP_SECS).unwrap().rules.leeway_secs, RETAIN_AFTER_EXP_SECS as u64);
        assert_eq!(leeway(RETAIN_AFTER_EXP_SECS + 1).unwrap_err().key, "[jwt] leeway_secs");
    }

    #[test]
    fn purges_run_at_most_once_per_interval() {
        let list = RevocationList::default();
        list.update(&[Revocation::Token { seq: 1, user_id: 1, jti: "a".into(), exp: 10 }]);
        list.update(&[Revocation::Token { seq: 2, user_id: 1, jti: "b".into(), exp: 20 }]);
        let t = 10_000;
        assert_eq!(list.purge_if_due(t), 2);
        list.update(&[Revocation::Token { seq: 3, user_id: 1, jti: "c".into(), exp: 30 }]);
        assert_eq!(list.purge_if_due(t + PURGE_INTERVAL_SECS - 1), 0, "too soon");
        assert_eq!(list.len(), 1);
        assert_eq!(list.purge_if_due(t + PURGE_INTERVAL_SECS), 1);
    }

    #[test]
    fn before_the_first_pull_the_list_ages_from_its_creation() {
        let list = RevocationList::default();
        assert!(!list.is_pulled() && list.age().is_none());
        std::thread::sleep(Duration::from_millis(20));
        assert!(list.unknown_for() >= Duration::from_millis(20), "{:?}", list.unknown_for());
        list.mark_pulled();
        assert!(list.is_pulled());
        assert!(list.unknown_for() < Duration::from_millis(20), "{:?}", list.unknown_for());
    }

    #[test]
    fn a_later_cutoff_wins_and_an_earlier_one_does_not_shorten_it() {
        let mut set = RevocationSet::default();
        set.apply(&Revocation::User { seq: 1, user_id: 7, issued_before: 100, exp: 900 });
        set.apply(&Revocation::User { seq: 2, user_id: 7, issued_before: 200, exp: 1000 });
        set.apply(&Revocation::User { seq: 3, user_id: 7, issued_before: 150, exp: 950 });
        assert_eq!(set.users[&7], (200, 1000));
    }

    /// Resident memory of this process in bytes (`VmRSS` of /proc/self/status). nextest runs
    /// each test in a process of its own, so the difference is this test's.
    fn resident_bytes() -> u64 {
        procfs::process::Process::myself().unwrap().status().unwrap().vmrss.unwrap() * 1024
    }

    /// 100,000 revocations arriving as 100 pulled pages of 1,000: each page is inserted in
    /// place (an entry applied once, never copied again), and the list's resident memory stays
    /// within a few MiB.
    #[test]
    fn a_hundred_thousand_revocations_fit_in_a_few_mebibytes() {
        let pages: Vec<Vec<Revocation>> = (0..100i64)
            .map(|p| {
                (0..1000i64)
                    .map(|i| {
                        let seq = p * 1000 + i;
                        Revocation::Token { seq, user_id: 1, jti: format!("{seq:032x}"), exp: i64::MAX / 2 }
                    })
                    .collect()
            })
            .collect();
        let list = RevocationList::default();
        let before = resident_bytes();
        let applied: usize = pages.iter().map(|page| list.update(page)).sum();
        let grown = resident_bytes().saturating_sub(before);
        assert_eq!(applied, 100_000, "one insert per entry, never a copy of the list");
        assert_eq!(list.len(), 100_000);
        assert!(grown < 8 << 20, "the list took {} KiB of resident memory", grown >> 10);
        eprintln!("100,000 revocations: {} KiB resident", grown >> 10);
        drop(pages);
    }
}
