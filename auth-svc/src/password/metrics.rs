//! Saturation of the password-hashing pool ([`super::pool::HashPool`]) as Prometheus metrics:
//!
//! - `auth_hash_slots`: hashing slots (`HASH_CONCURRENCY`), each ~19 MiB of argon2 memory;
//! - `auth_hash_slots_in_use`: slots running a hash right now;
//! - `auth_hash_queue_waiting`: requests waiting for a slot;
//! - `auth_hash_queue_timeouts_total`: requests that waited `HASH_QUEUE_TIMEOUT_MS` without a
//!   slot and got 503 (also counted as `http_unavailable_responses_total{cause="hashing"}`);
//! - `auth_hash_jobs_total`: argon2 computations started (hashes and verifications).
//!
//! `in_use == slots` with a growing queue is saturation: logins and registrations slow down,
//! then fail with 503 once the queue timeout passes.

use prometheus::{IntCounter, IntGauge, Registry};

#[derive(Clone)]
pub struct HashMetrics {
    slots: IntGauge,
    in_use: IntGauge,
    waiting: IntGauge,
    queue_timeouts: IntCounter,
    started: IntCounter,
}

/// Decrements its gauge when dropped, so every exit path (success, timeout, a cancelled
/// request, a finished hash) gives back what it took.
pub struct GaugeGuard(IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn guard(gauge: &IntGauge) -> GaugeGuard {
    gauge.inc();
    GaugeGuard(gauge.clone())
}

impl HashMetrics {
    /// Metrics for a pool of `slots` hashing slots (not registered yet: [`Self::register`]).
    pub fn new(slots: usize) -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("static metric definition is valid");
        let this = Self {
            slots: gauge("auth_hash_slots", "Password-hashing slots (HASH_CONCURRENCY)"),
            in_use: gauge("auth_hash_slots_in_use", "Password-hashing slots running a hash"),
            waiting: gauge("auth_hash_queue_waiting", "Requests waiting for a password-hashing slot"),
            queue_timeouts: IntCounter::new(
                "auth_hash_queue_timeouts_total",
                "Requests refused with 503 after waiting HASH_QUEUE_TIMEOUT_MS for a hashing slot",
            )
            .expect("static metric definition is valid"),
            started: IntCounter::new(
                "auth_hash_jobs_total",
                "argon2 computations started (password hashes and verifications)",
            )
            .expect("static metric definition is valid"),
        };
        this.slots.set(i64::try_from(slots).unwrap_or(i64::MAX));
        this
    }

    /// Adds the five metrics to `registry`. Errors: `AlreadyReg` when registered twice.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.slots.clone()))?;
        registry.register(Box::new(self.in_use.clone()))?;
        registry.register(Box::new(self.waiting.clone()))?;
        registry.register(Box::new(self.queue_timeouts.clone()))?;
        registry.register(Box::new(self.started.clone()))
    }

    /// The count of argon2 computations started.
    pub fn started(&self) -> IntCounter {
        self.started.clone()
    }

    /// Counts a waiting request until the guard is dropped.
    pub fn waiting(&self) -> GaugeGuard {
        guard(&self.waiting)
    }

    /// Counts a busy slot until the guard is dropped.
    pub fn slot_in_use(&self) -> GaugeGuard {
        guard(&self.in_use)
    }

    pub fn queue_timed_out(&self) {
        self.queue_timeouts.inc();
    }
}
