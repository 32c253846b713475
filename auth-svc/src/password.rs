//! Password hashing with argon2id (m=19456 KiB, t=2, p=1), off the async runtime and bounded:
//! at most `concurrency` hashes run at once (each holds ~19 MiB), a request waits at most
//! `queue_timeout` for a slot, then gets 503. Unknown users are checked against a dummy hash so
//! the response time does not tell whether a username exists.
//!
//! Hashes run on `concurrency` dedicated threads rather than tokio's blocking pool, each with its
//! own 19 MiB argon2 memory allocated once: glibc keeps freed 19 MiB blocks in per-thread arenas,
//! so allocating per hash on up to 512 blocking threads grew the process by hundreds of MiB.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::ApiError;
use crate::hash_metrics::HashMetrics;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    dummy: Arc<OnceCell<String>>,
    jobs: mpsc::Sender<Job>,
    metrics: HashMetrics,
}

/// Starts `n` hashing threads; they exit when every `Hasher` clone (every sender) is gone.
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

fn params() -> Params {
    Params::new(19_456, 2, 1, None).expect("valid argon2 parameters")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

thread_local! {
    /// The hashing thread's argon2 memory (19 MiB), allocated once and reused by every hash on
    /// that thread, so freed blocks never pile up in malloc arenas.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        f(&mut blocks[..count])
    })
}

/// Computes the raw argon2 output into `out` with the thread's reusable memory.
fn compute(
    argon: &Argon2<'_>,
    block_count: usize,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    with_blocks(block_count, |blocks| argon.hash_password_into_with_memory(password, salt, out, blocks))
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), the same format
/// `argon2::PasswordHasher` writes.
fn hash_blocking(password: &[u8]) -> Result<String, ApiError> {
    let fail = |e: &dyn std::fmt::Display| ApiError::Internal(format!("argon2 hash: {e}"));
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
    let params = params();
    let mut out = [0u8; 32];
    compute(&argon2(), params.block_count(), password, salt_bytes, &mut out).map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Verifies `password` against a PHC string using the parameters stored in it.
fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if compute(&argon, params.block_count(), password, salt_bytes, &mut out).is_err() {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

impl Hasher {
    pub fn new(concurrency: usize, queue_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            queue_timeout,
            dummy: Arc::new(OnceCell::new()),
            jobs: spawn_workers(concurrency),
            metrics: HashMetrics::new(concurrency),
        }
    }

    /// The pool's saturation metrics (`auth_hash_*`), to register in the service's registry.
    pub fn metrics(&self) -> &HashMetrics {
        &self.metrics
    }

    /// Runs `work` on a hashing thread while holding a hashing slot. The slot moves into the job,
    /// so a cancelled request cannot free it while the hash still runs; as many threads as slots
    /// exist, so a job that holds a slot never waits for a thread.
    async fn bounded<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let waiting = self.metrics.waiting();
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                self.metrics.queue_timed_out();
                ApiError::Busy
            })?
            .map_err(|_| ApiError::Internal("hashing semaphore closed".into()))?;
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
        self.jobs.send(job).map_err(|_| ApiError::Internal("hashing threads stopped".into()))?;
        answer.await.map_err(|_| ApiError::Internal("hashing job dropped".into()))
    }

    /// How many hashing jobs (hashes and verifications) have started since this hasher was
    /// built (`auth_hash_jobs_total`).
    pub fn jobs_started(&self) -> u64 {
        self.metrics.started().get()
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.bounded(move || hash_blocking(password.as_bytes())).await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, ApiError> {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (self.dummy().await?, false),
        };
        let ok = self.bounded(move || verify_blocking(password.as_bytes(), &phc)).await?;
        Ok(ok && real)
    }

    async fn dummy(&self) -> Result<String, ApiError> {
        self.dummy
            .get_or_try_init(|| async {
                let random: [u8; 16] = rand::random();
                self.bounded(move || hash_blocking(&random)).await?
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify_round_trips_with_the_chosen_parameters() {
        let h = Hasher::new(2, Duration::from_secs(5));
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!h.verify("wrong horse".into(), Some(phc)).await.unwrap());
        assert!(!h.verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn phc_strings_are_compatible_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_blocking(b"SecurePass123!").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"SecurePass123!", &parsed).is_ok());
        assert!(argon2().verify_password(b"SecurePass124!", &parsed).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2().hash_password(b"SecurePass123!", &salt).unwrap().to_string();
        assert!(verify_blocking(b"SecurePass123!", &theirs));
        assert!(!verify_blocking(b"SecurePass123", &theirs));
        // Other parameters stored in the string are honoured.
        let light = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap());
        let weak = light.hash_password(b"pw-123456", &salt).unwrap().to_string();
        assert!(verify_blocking(b"pw-123456", &weak));
        assert!(!verify_blocking(b"pw-1234567", &weak));
        assert!(!verify_blocking(b"pw-123456", "not a phc string"));
    }

    #[tokio::test]
    async fn hashes_run_on_the_fixed_hashing_threads() {
        let h = Hasher::new(2, Duration::from_secs(5));
        for _ in 0..6 {
            let name = h.bounded(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
            assert!(name.as_deref().is_some_and(|n| n == "argon2-0" || n == "argon2-1"), "{name:?}");
        }
    }

    #[tokio::test]
    async fn saturation_shows_in_the_hashing_metrics() {
        let h = Hasher::new(1, Duration::from_millis(50));
        let registry = prometheus::Registry::new();
        h.metrics().register(&registry).unwrap();
        let value = |name: &str| -> f64 {
            let text = platform::metrics::render(&registry);
            let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{text}"));
            line.rsplit_once(' ').unwrap().1.parse().unwrap()
        };
        assert_eq!(value("auth_hash_slots"), 1.0);
        // Occupy the only slot with a job that waits for our signal.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let h = h.clone();
            async move { h.bounded(move || released.recv().is_ok()).await }
        });
        while value("auth_hash_slots_in_use") < 1.0 {
            tokio::task::yield_now().await;
        }
        // A second request waits, times out, and is counted.
        assert!(matches!(h.hash("password1".into()).await, Err(ApiError::Busy)));
        assert_eq!(value("auth_hash_queue_timeouts_total"), 1.0);
        assert_eq!(value("auth_hash_queue_waiting"), 0.0, "the timed-out waiter is no longer counted");
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert_eq!(value("auth_hash_slots_in_use"), 0.0, "the slot is given back with the permit");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_piling_up() {
        let h = Hasher::new(1, Duration::from_millis(1));
        let held = h.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(h.hash("password1".into()).await, Err(ApiError::Busy)));
        drop(held);
        assert!(h.hash("password1".into()).await.is_ok());
    }
}
