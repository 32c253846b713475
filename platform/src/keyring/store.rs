//! The keyring in use and how it stays current, shared by auth-svc and the gateway.
//!
//! - [`KeyringStore::fixed`]: `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`), loaded once at start.
//! - [`KeyringStore::refreshable`] + [`Refresher`]: a [`KeyringSource`] such as Secrets
//!   Manager, re-read every `interval` and early on request (a token carrying a key id we do
//!   not hold), at most once per `min_gap`. A failed refresh keeps the last good keyring: a
//!   Secrets Manager hiccup must not log everybody out.
//!
//! Callers that meet an unknown key id ask [`KeyringStore::refreshed_since`]: "has a refresh
//! that began after I first saw this key id succeeded?" Only then is the key id's absence
//! evidence that it is not ours.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use prometheus::IntCounterVec;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use tokio::sync::{Notify, watch};

use super::Keyring;

/// A keyring and when it was loaded.
struct Loaded {
    ring: Arc<Keyring>,
    at: Instant,
}

/// What the refresher has done so far; waiters watch it.
#[derive(Debug, Clone, Copy, Default)]
struct RefreshLog {
    /// When the latest successful refresh began.
    last_success_started: Option<Instant>,
    /// When the latest attempt began, and whether it failed.
    last_attempt_started: Option<Instant>,
    last_attempt_failed: bool,
}

/// The answer of [`KeyringStore::refreshed_since`].
#[derive(Debug, Clone)]
pub enum Freshness {
    /// A refresh that began after the given instant succeeded; this is the keyring now in use.
    Refreshed(Arc<Keyring>),
    /// The keyring cannot change (`JWT_SECRET`): it is as fresh as it will ever be.
    Fixed(Arc<Keyring>),
    /// No such refresh succeeded within the wait (Secrets Manager slow or failing, or no
    /// keyring at all yet).
    Pending,
}

/// The keyring in use, shared by every request (a lock-free `arc-swap` read). `None` until the
/// first successful load.
pub struct KeyringStore {
    current: ArcSwapOption<Loaded>,
    refreshable: bool,
    log: watch::Sender<RefreshLog>,
    wanted: Notify,
}

impl KeyringStore {
    /// A keyring that never changes (environment secrets).
    pub fn fixed(ring: impl Into<Arc<Keyring>>) -> Self {
        let store = Self::new(false);
        store.set(ring);
        store
    }

    /// An empty store filled and kept current by a [`Refresher`].
    pub fn refreshable() -> Self {
        Self::new(true)
    }

    fn new(refreshable: bool) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            refreshable,
            log: watch::Sender::new(RefreshLog::default()),
            wanted: Notify::new(),
        }
    }

    /// The keyring in use, if one was loaded.
    pub fn current(&self) -> Option<Arc<Keyring>> {
        self.current.load().as_ref().map(|l| l.ring.clone())
    }

    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Whether the keyring in use holds key id `kid`. Reads through arc-swap's guard: no
    /// reference count is touched, so the request path does not contend on one across threads.
    pub fn holds(&self, kid: &str) -> bool {
        self.current.load().as_ref().is_some_and(|l| l.ring.contains(kid))
    }

    /// Time since the keyring in use was loaded (or last re-read successfully).
    pub fn age(&self) -> Option<Duration> {
        self.current.load().as_ref().map(|l| l.at.elapsed())
    }

    /// Whether a [`Refresher`] keeps this store current.
    pub fn is_refreshable(&self) -> bool {
        self.refreshable
    }

    /// Installs `ring`; logs the key ids when they changed.
    pub fn set(&self, ring: impl Into<Arc<Keyring>>) {
        let ring = ring.into();
        let previous = self.current.load_full();
        let changed = previous.as_ref().is_none_or(|l| l.ring.kids() != ring.kids());
        if changed {
            tracing::info!(kids = ?ring.kids(), "keyring loaded");
        }
        self.current.store(Some(Arc::new(Loaded { ring, at: Instant::now() })));
    }

    /// Asks the refresher for an early refresh. Coalesced: many requests, one refresh, at most
    /// one per the refresher's `min_gap`.
    pub fn request_refresh(&self) {
        if self.refreshable {
            self.wanted.notify_one();
        }
    }

    /// Waits at most `wait` for a refresh that began after `since` to succeed, requesting one
    /// if none has. See [`Freshness`].
    pub async fn refreshed_since(&self, since: Instant, wait: Duration) -> Freshness {
        if !self.refreshable {
            return self.current().map_or(Freshness::Pending, Freshness::Fixed);
        }
        let mut rx = self.log.subscribe();
        let succeeded_after = |l: &RefreshLog| l.last_success_started.is_some_and(|t| t > since);
        if !succeeded_after(&rx.borrow()) {
            self.request_refresh();
            let settled = |l: &RefreshLog| {
                succeeded_after(l) || (l.last_attempt_failed && l.last_attempt_started.is_some_and(|t| t > since))
            };
            match tokio::time::timeout(wait, rx.wait_for(settled)).await {
                Ok(Ok(log)) if succeeded_after(&log) => {}
                _ => return Freshness::Pending,
            }
        }
        self.current().map_or(Freshness::Pending, Freshness::Refreshed)
    }

    /// Waits until a keyring is loaded, at most `wait`. True when ready.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        let mut rx = self.log.subscribe();
        let ready = async {
            loop {
                if self.is_ready() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(wait, ready).await.is_ok() && self.is_ready()
    }
}

/// Where a refreshable keyring is read from.
#[async_trait]
pub trait KeyringSource: Send + Sync {
    /// Reads the keyring. The error describes what failed, never a secret.
    async fn load(&self) -> Result<Keyring, String>;

    /// What this source is, for logs (e.g. the secret's ARN).
    fn describe(&self) -> String;
}

/// Loads the keyring, then re-reads it every `interval` and on request, keeping the last good
/// one on failure. Run it with [`Refresher::run`] on a background task.
pub struct Refresher {
    pub source: Box<dyn KeyringSource>,
    pub store: Arc<KeyringStore>,
    /// Periodic re-read.
    pub interval: Duration,
    /// Smallest time between the starts of two refreshes (requests in between coalesce).
    pub min_gap: Duration,
    /// Counts refreshes by `outcome` = success | failure, when given.
    pub refreshes: Option<IntCounterVec>,
}

/// How long after start a keyring source that cannot be read yet is expected (its service is
/// starting too: auth-svc behind its discovery name): failures are logged at INFO until then.
pub const STARTUP_GRACE: Duration = Duration::from_secs(30);

/// Default smallest gap between two keyring refreshes.
pub const DEFAULT_MIN_REFRESH_GAP: Duration = Duration::from_secs(2);

impl Refresher {
    /// One read of the source; true when it succeeded and the store was updated.
    pub async fn refresh_once(&self) -> bool {
        self.refresh(false).await
    }

    /// One read; a failure before the first keyring was loaded is logged at INFO when
    /// `starting` (the source, e.g. auth-svc's JWKS, may simply not be up yet), else at WARN.
    async fn refresh(&self, starting: bool) -> bool {
        let started = Instant::now();
        self.store.log.send_modify(|l| l.last_attempt_started = Some(started));
        let result = self.source.load().await;
        let ok = result.is_ok();
        match result {
            Ok(ring) => self.store.set(ring),
            Err(e) if self.store.is_ready() => tracing::warn!(
                source = %self.source.describe(),
                error = %e,
                "keyring refresh failed; keeping the last good keyring"
            ),
            Err(e) if starting => tracing::info!(
                source = %self.source.describe(),
                error = %e,
                "keyring not loaded yet; retrying (requests with a token get 503 until it loads)"
            ),
            Err(e) => tracing::warn!(
                source = %self.source.describe(),
                error = %e,
                "keyring still not loaded; requests with a token get 503 until it loads"
            ),
        }
        if let Some(c) = &self.refreshes {
            c.with_label_values(&[if ok { "success" } else { "failure" }]).inc();
        }
        self.store.log.send_modify(|l| {
            l.last_attempt_failed = !ok;
            if ok {
                l.last_success_started = Some(started);
            }
        });
        ok
    }

    /// Refreshes until `shutdown` resolves. Until the first load succeeds it retries quickly
    /// (1, 2, 4 .. 30 s) rather than waiting a whole interval unready.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures: u32 = 0;
        let began = Instant::now();
        loop {
            let started = Instant::now();
            if self.refresh(began.elapsed() < STARTUP_GRACE).await {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
            }
            let wait = if self.store.is_ready() {
                self.interval
            } else {
                Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30)).min(self.interval)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.store.wanted.notified() => {
                    tokio::time::sleep(self.min_gap.saturating_sub(started.elapsed())).await;
                }
                () = &mut shutdown => return,
            }
        }
    }
}

/// A Prometheus gauge `<name>` = seconds since the keyring in use was loaded (0 before the
/// first load), computed at scrape time.
pub struct KeyringAgeCollector {
    store: Arc<KeyringStore>,
    gauge: prometheus::IntGauge,
}

impl KeyringAgeCollector {
    pub fn new(name: &str, store: Arc<KeyringStore>) -> prometheus::Result<Self> {
        let gauge = prometheus::IntGauge::new(name, "Seconds since the keyring in use was loaded")?;
        Ok(Self { store, gauge })
    }
}

impl Collector for KeyringAgeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set(self.store.age().map_or(0, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Secret;

    fn ring(c: char) -> Keyring {
        Keyring::new(&Secret::new(c.to_string().repeat(40)), None).unwrap()
    }

    /// A source that serves a scripted sequence: `Some(c)` a keyring of `c`s, `None` a failure.
    struct Scripted {
        script: Vec<Option<char>>,
        calls: Arc<AtomicU32>,
    }

    #[async_trait]
    impl KeyringSource for Scripted {
        async fn load(&self) -> Result<Keyring, String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
            match self.script.get(n.min(self.script.len() - 1)).copied().flatten() {
                Some(c) => Ok(ring(c)),
                None => Err("unreachable".into()),
            }
        }

        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn refresher(script: Vec<Option<char>>, min_gap: Duration) -> (Arc<Refresher>, Arc<KeyringStore>) {
        refresher_counting(script, min_gap, Arc::default())
    }

    fn refresher_counting(
        script: Vec<Option<char>>,
        min_gap: Duration,
        calls: Arc<AtomicU32>,
    ) -> (Arc<Refresher>, Arc<KeyringStore>) {
        let store = Arc::new(KeyringStore::refreshable());
        let r = Refresher {
            source: Box::new(Scripted { script, calls }),
            store: store.clone(),
            interval: Duration::from_secs(3600),
            min_gap,
            refreshes: None,
        };
        (Arc::new(r), store)
    }

    #[tokio::test]
    async fn failed_refresh_keeps_the_last_good_keyring() {
        let (r, store) = refresher(vec![Some('a'), None], Duration::ZERO);
        assert!(!store.is_ready());
        assert!(r.refresh_once().await);
        let kid = store.current().unwrap().current_kid().to_owned();
        assert!(!r.refresh_once().await);
        assert_eq!(store.current().unwrap().current_kid(), kid);
    }

    /// Records (level, message) of every event.
    #[derive(Clone, Default)]
    struct Events(Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().unwrap().push((*event.metadata().level(), m.0));
        }
    }

    /// A source that is not up yet at start is normal (auth-svc starts beside the gateway):
    /// INFO during the start-up grace, WARN after it, and "keeping the last good keyring" only
    /// when there is one.
    #[tokio::test]
    async fn failures_before_the_first_load_are_info_while_starting_and_never_claim_a_last_good_keyring() {
        use tracing_subscriber::layer::SubscriberExt;
        let events = Events::default();
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let (r, _store) = refresher(vec![None, None, Some('a'), None], Duration::ZERO);
        assert!(!r.refresh(true).await);
        assert!(!r.refresh(false).await);
        assert!(r.refresh(true).await);
        assert!(!r.refresh(true).await);
        let seen: Vec<_> = events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m.contains("not loaded") || m.contains("failed"))
            .cloned()
            .collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].0, tracing::Level::INFO, "{seen:?}");
        assert!(seen[0].1.starts_with("keyring not loaded yet"), "{seen:?}");
        assert_eq!(seen[1].0, tracing::Level::WARN, "{seen:?}");
        assert!(seen[1].1.starts_with("keyring still not loaded"), "{seen:?}");
        assert_eq!(seen[2], (tracing::Level::WARN, "keyring refresh failed; keeping the last good keyring".into()));
    }

    #[tokio::test]
    async fn refreshed_since_waits_for_a_refresh_that_began_later() {
        let (r, store) = refresher(vec![Some('a'), Some('b')], Duration::from_millis(50));
        let runner = tokio::spawn({
            let r = r.clone();
            async move { r.run(std::future::pending()).await }
        });
        assert!(store.wait_ready(Duration::from_secs(5)).await);
        let first = store.current().unwrap().current_kid().to_owned();
        let seen = Instant::now();
        match store.refreshed_since(seen, Duration::from_secs(5)).await {
            Freshness::Refreshed(ring) => assert_ne!(ring.current_kid(), first, "a new read happened"),
            other => panic!("{other:?}"),
        }
        // A refresh that already began after `seen` answers at once, without another read.
        assert!(matches!(store.refreshed_since(seen, Duration::ZERO).await, Freshness::Refreshed(_)));
        runner.abort();
    }

    #[tokio::test]
    async fn refresh_requests_coalesce_within_the_minimum_gap() {
        let calls = Arc::new(AtomicU32::new(0));
        let (r, store) = refresher_counting(vec![Some('a')], Duration::from_millis(300), calls.clone());
        let runner = tokio::spawn({
            let r = r.clone();
            async move { r.run(std::future::pending()).await }
        });
        assert!(store.wait_ready(Duration::from_secs(5)).await);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let mut waiters = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let store = store.clone();
            waiters.spawn(async move { store.refreshed_since(Instant::now(), Duration::from_secs(5)).await });
        }
        while let Some(w) = waiters.join_next().await {
            assert!(matches!(w.unwrap(), Freshness::Refreshed(_)));
        }
        // 100 concurrent requests: one load at start plus at most two more (requests that
        // arrive while a refresh runs need the next one), never one per request.
        let loads = calls.load(Ordering::SeqCst);
        assert!((2..=3).contains(&loads), "{loads} loads");
        runner.abort();
    }

    #[tokio::test]
    async fn a_failing_source_leaves_waiters_pending_not_refreshed() {
        let calls = Arc::new(AtomicU32::new(0));
        let (r, store) = refresher_counting(vec![Some('a'), None], Duration::ZERO, calls.clone());
        assert!(r.refresh_once().await);
        let runner = tokio::spawn({
            let r = r.clone();
            async move { r.run(std::future::pending()).await }
        });
        let seen = Instant::now();
        assert!(matches!(store.refreshed_since(seen, Duration::from_secs(2)).await, Freshness::Pending));
        // Pending because the re-read the waiter asked for failed, not because none happened
        // within the wait (which a slow machine could also produce).
        assert!(calls.load(Ordering::SeqCst) >= 2, "the waiter's re-read reached the source");
        runner.abort();
    }

    #[tokio::test]
    async fn fixed_keyrings_are_always_fresh() {
        let store = KeyringStore::fixed(ring('a'));
        assert!(matches!(store.refreshed_since(Instant::now(), Duration::ZERO).await, Freshness::Fixed(_)));
    }
}
