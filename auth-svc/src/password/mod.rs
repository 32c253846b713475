//! Password hashing: argon2id (m=19456 KiB, t=2, p=1) as PHC strings ([`phc`]), computed on a
//! bounded pool of dedicated threads ([`pool`]) so that neither the async runtime nor memory
//! suffers under a flood, with the pool's saturation as metrics ([`metrics`]). Unknown users
//! are checked against a dummy hash, so the response time does not tell whether a username
//! exists.

pub mod metrics;
pub mod phc;
pub mod pool;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use metrics::HashMetrics;
use phc::PhcError;
use pool::{HashPool, PoolError};

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Phc(#[from] PhcError),
}

impl HashError {
    /// Every hashing slot stayed busy for the queue timeout: the client may retry (503).
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Pool(PoolError::Busy))
    }
}

/// Hashes and verifies passwords on the hashing pool. Cheap to clone (one pool).
#[derive(Clone)]
pub struct Hasher {
    pool: HashPool,
    /// The hash unknown users are checked against, made on first use.
    dummy: Arc<OnceCell<String>>,
}

impl Hasher {
    /// A pool of `concurrency` hashing threads whose requests wait at most `queue_timeout` for
    /// one (see [`pool`]).
    pub fn new(concurrency: usize, queue_timeout: Duration) -> Self {
        Self { pool: HashPool::new(concurrency, queue_timeout), dummy: Arc::new(OnceCell::new()) }
    }

    /// The pool's saturation metrics (`auth_hash_*`), to register in the service's registry.
    pub fn metrics(&self) -> &HashMetrics {
        self.pool.metrics()
    }

    /// How many hashing jobs (hashes and verifications) have started since this hasher was
    /// built (`auth_hash_jobs_total`).
    pub fn jobs_started(&self) -> u64 {
        self.pool.metrics().started().get()
    }

    /// `password` as a PHC string with a fresh salt. Errors: [`HashError::is_busy`] when no slot
    /// freed up in time.
    #[tracing::instrument(name = "password hash", skip_all)]
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self.pool.run(move || phc::hash(password.as_bytes())).await??)
    }

    /// Whether `password` matches `phc`; with no `phc` (no such user) it is checked against the
    /// dummy hash, at the same cost, and never matches.
    #[tracing::instrument(name = "password verify", skip_all)]
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (self.dummy().await?, false),
        };
        let matches = self.pool.run(move || phc::verify(password.as_bytes(), &phc)).await?;
        Ok(matches && real)
    }

    async fn dummy(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                let random: [u8; 16] = rand::random();
                Ok(self.pool.run(move || phc::hash(&random)).await??)
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify_round_trips_and_unknown_users_never_match() {
        let h = Hasher::new(2, Duration::from_secs(5));
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!h.verify("wrong horse".into(), Some(phc)).await.unwrap());
        let before = h.jobs_started();
        assert!(!h.verify("anything".into(), None).await.unwrap());
        assert_eq!(h.jobs_started(), before + 2, "the dummy is hashed once, then verified against");
        assert!(!h.verify("anything".into(), None).await.unwrap());
        assert_eq!(h.jobs_started(), before + 3, "an unknown user costs one hash, like a known one");
    }
}
