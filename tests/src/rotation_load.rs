//! Steady load during a key rotation: workers send `GET /tasks` through the front door with
//! tokens from a shared pool (tokens of either key), and tally every answer by the token's key
//! id and status. The rotation tests wait on the tally with a deadline and assert on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use platform::keyring::UnverifiedToken;
use reqwest::Method;
use testkit::wait;

use crate::{call, client};

/// Answers by (token's `kid`, HTTP status) → count.
pub type Tally = BTreeMap<(String, u16), u32>;

/// The load: 6 workers, one request each every ~5 ms, until [`RotationLoad::finish`].
pub struct RotationLoad {
    pool: Arc<RwLock<Vec<String>>>,
    stop: Arc<AtomicBool>,
    /// Requests sent so far with tokens of the first key ([0]) and of any other key ([1]).
    sent: Arc<[AtomicU32; 2]>,
    workers: tokio::task::JoinSet<Tally>,
    old_kid: String,
}

/// The key id in a token's header.
pub fn kid(token: &str) -> String {
    UnverifiedToken::parse(token).unwrap().kid().to_owned()
}

impl RotationLoad {
    /// Starts the load at `base` (the front door's URL) with `tokens`, all signed by the key
    /// that is current before the rotation.
    pub fn start(base: &str, tokens: Vec<String>) -> Self {
        let old_kid = kid(&tokens[0]);
        let pool = Arc::new(RwLock::new(tokens));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let mut workers = tokio::task::JoinSet::new();
        let c = client();
        for worker in 0..6usize {
            let (c, base, pool, stop, sent) = (c.clone(), base.to_owned(), pool.clone(), stop.clone(), sent.clone());
            let old_kid = old_kid.clone();
            workers.spawn(async move {
                let mut seen = Tally::new();
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let token = {
                        let pool = pool.read().unwrap();
                        pool[i % pool.len()].clone()
                    };
                    let r = call(&c, Method::GET, &format!("{base}/tasks"), Some(&token), None).await;
                    let token_kid = kid(&token);
                    sent[usize::from(token_kid != old_kid)].fetch_add(1, Ordering::Relaxed);
                    *seen.entry((token_kid, r.status.as_u16())).or_default() += 1;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            });
        }
        Self { pool, stop, sent, workers, old_kid }
    }

    /// The key id of the tokens the load started with.
    pub fn old_kid(&self) -> &str {
        &self.old_kid
    }

    /// Adds a token to the pool the workers pick from.
    pub fn add_token(&self, token: String) {
        self.pool.write().unwrap().push(token);
    }

    /// Requests sent so far with old-key tokens (`false`) or new-key tokens (`true`).
    pub fn sent_with(&self, new_key: bool) -> u32 {
        self.sent[usize::from(new_key)].load(Ordering::Relaxed)
    }

    /// Waits (deadline 30 s) until at least `n` requests with old-key tokens were sent.
    pub async fn wait_for_old_key_load(&self, n: u32) {
        wait::until("load with old-key tokens", Duration::from_secs(30), || {
            let sent = self.sent_with(false);
            async move { sent >= n }
        })
        .await;
    }

    /// Keeps the load running for at least `window` from now, and until each key's tokens
    /// carried at least `n` more requests (deadline 30 s): what the assertions need on any
    /// machine, however loaded.
    pub async fn run_both_keys_for(&self, window: Duration, n: u32) {
        let (old_so_far, new_so_far) = (self.sent_with(false), self.sent_with(true));
        let until = Instant::now() + window;
        wait::until("load with both keys' tokens after the rotation", Duration::from_secs(30), || {
            let done = Instant::now() >= until
                && self.sent_with(false) >= old_so_far + n
                && self.sent_with(true) >= new_so_far + n;
            async move { done }
        })
        .await;
    }

    /// Stops the workers and returns what they saw.
    pub async fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Tally::new();
        while let Some(r) = self.workers.join_next().await {
            for (k, n) in r.unwrap() {
                *seen.entry(k).or_default() += n;
            }
        }
        seen
    }
}

/// Requests in `seen` made with tokens of key `kid`.
pub fn requests_with(seen: &Tally, kid: &str) -> u32 {
    seen.iter().filter(|((k, _), _)| k == kid).map(|(_, n)| n).sum()
}

/// Requests in `seen` not answered 200.
pub fn failed(seen: &Tally) -> u32 {
    seen.iter().filter(|((_, s), _)| *s != 200).map(|(_, n)| n).sum()
}
