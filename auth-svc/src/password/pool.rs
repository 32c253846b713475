//! A bounded pool of hashing threads: at most `concurrency` argon2 computations run at once
//! (each holds ~19 MiB), and a request waits at most `queue_timeout` for a slot before it is
//! refused ([`PoolError::Busy`], a 503 upstream), so a flood of logins queues briefly and then
//! fails fast instead of piling up.
//!
//! The work runs on `concurrency` dedicated threads rather than tokio's blocking pool: each
//! keeps its argon2 memory for its whole life (see [`super::phc`]), so memory stays at
//! `concurrency` × 19 MiB however many requests come.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::metrics::HashMetrics;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every slot stayed busy for the whole queue timeout.
    #[error("every hashing slot stayed busy for the queue timeout")]
    Busy,
    /// No hashing thread takes jobs any more (none could be started, or all have exited).
    #[error("the hashing threads have stopped")]
    Stopped,
    /// The job ended without an answer (it panicked).
    #[error("a hashing job ended without an answer")]
    JobLost,
}

#[derive(Clone)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    jobs: mpsc::Sender<Job>,
    metrics: HashMetrics,
}

/// Starts `n` hashing threads; they exit when every `HashPool` clone (every sender) is gone.
fn spawn_workers(n: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
            loop {
                // The lock is held only while taking a job, not while running it.
                let job = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a hashing thread");
        }
    }
    tx
}

impl HashPool {
    /// `concurrency` slots and as many threads (`HASH_CONCURRENCY`); a job waits at most
    /// `queue_timeout` for a slot (`HASH_QUEUE_TIMEOUT_MS`).
    pub fn new(concurrency: usize, queue_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            queue_timeout,
            jobs: spawn_workers(concurrency),
            metrics: HashMetrics::new(concurrency),
        }
    }

    /// The pool's saturation metrics (`auth_hash_*`).
    pub fn metrics(&self) -> &HashMetrics {
        &self.metrics
    }

    /// Runs `work` on a hashing thread while holding a slot. The slot moves into the job, so a
    /// cancelled request cannot free it while the work still runs; as many threads as slots
    /// exist, so a job that holds a slot never waits for a thread.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolError> {
        let waiting = self.metrics.waiting();
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                self.metrics.queue_timed_out();
                PoolError::Busy
            })?
            .map_err(|_| PoolError::Stopped)?;
        drop(waiting);
        let slot = (permit, self.metrics.slot_in_use());
        let (reply, answer) = tokio::sync::oneshot::channel();
        let started = self.metrics.started();
        let job: Job = Box::new(move || {
            started.inc();
            let out = work();
            drop(slot);
            let _ = reply.send(out);
        });
        self.jobs.send(job).map_err(|_| PoolError::Stopped)?;
        answer.await.map_err(|_| PoolError::JobLost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_fixed_hashing_threads() {
        let pool = HashPool::new(2, Duration::from_secs(5));
        for _ in 0..6 {
            let name = pool.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
            assert!(name.as_deref().is_some_and(|n| n == "argon2-0" || n == "argon2-1"), "{name:?}");
        }
    }

    #[tokio::test]
    async fn saturation_shows_in_the_hashing_metrics() {
        let pool = HashPool::new(1, Duration::from_millis(50));
        let registry = prometheus::Registry::new();
        pool.metrics().register(&registry).unwrap();
        let value = |name: &str| -> f64 {
            let text = platform::metrics::render(&registry);
            let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{text}"));
            line.rsplit_once(' ').unwrap().1.parse().unwrap()
        };
        assert_eq!(value("auth_hash_slots"), 1.0);
        // Occupy the only slot with a job that waits for our signal.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || released.recv().is_ok()).await }
        });
        while value("auth_hash_slots_in_use") < 1.0 {
            tokio::task::yield_now().await;
        }
        // A second job waits, times out, and is counted.
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        assert_eq!(value("auth_hash_queue_timeouts_total"), 1.0);
        assert_eq!(value("auth_hash_queue_waiting"), 0.0, "the timed-out waiter is no longer counted");
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert_eq!(value("auth_hash_slots_in_use"), 0.0, "the slot is given back with the permit");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_piling_up() {
        let pool = HashPool::new(1, Duration::from_millis(1));
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        drop(held);
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[tokio::test]
    async fn a_job_that_panics_answers_instead_of_hanging() {
        let pool = HashPool::new(1, Duration::from_secs(5));
        assert_eq!(pool.run(|| -> u8 { panic!("a bug in the hashing code") }).await, Err(PoolError::JobLost));
    }
}
