//! What every auth-svc handler shares: the database pool, the keyring, the hashing pool, the
//! throttle, the token settings and the HTTP metrics.

use std::sync::Arc;
use std::time::Duration;

use platform::keyring::TokenRules;
use platform::keyring::store::{DEFAULT_MIN_REFRESH_GAP, KeyringAgeCollector, KeyringStore, Refresher};
use platform::metrics::HttpMetrics;
use sqlx::PgPool;

use crate::config::Config;
use crate::password::Hasher;
use crate::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The keyring in use: fixed (`JWT_SECRET`) or kept current from Secrets Manager.
    pub keyring: Arc<KeyringStore>,
    /// Fills and refreshes [`AppState::keyring`] from Secrets Manager; [`crate::run`] starts it.
    pub refresher: Option<Arc<Refresher>>,
    pub hasher: Hasher,
    pub throttle: Arc<Throttle>,
    pub token_lifetime_secs: i64,
    /// Lifetime of client credentials access tokens (`API_TOKEN_LIFETIME_SECS`).
    pub api_token_lifetime_secs: i64,
    pub rules: TokenRules,
    pub metrics: HttpMetrics,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl AppState {
    /// The state for `config`. Registers the hashing pool's metrics (`auth_hash_*`) and the
    /// keyring's (`auth_keyring_refreshes_total{outcome}`, `auth_keyring_age_seconds`) in
    /// `metrics`' registry.
    pub fn new(config: Config, pool: PgPool, metrics: HttpMetrics) -> Self {
        let hasher = Hasher::new(config.hash_concurrency, config.hash_queue_timeout);
        if let Err(e) = hasher.metrics().register(metrics.registry()) {
            // Only a second AppState on one registry (tests) gets here; the first one's counts stay.
            tracing::warn!(error = %e, "hashing metrics not registered");
        }
        let refreshes = prometheus::IntCounterVec::new(
            prometheus::Opts::new("auth_keyring_refreshes_total", "Keyring loads and refreshes by outcome"),
            &["outcome"],
        )
        .expect("static metric definition is valid");
        // A second AppState on the same registry (tests) keeps the first registration.
        let _ = metrics.registry().register(Box::new(refreshes.clone()));
        let (keyring, refresher) =
            config.keyring.build(config.keyring_refresh_interval, DEFAULT_MIN_REFRESH_GAP, Some(refreshes));
        if let Ok(age) = KeyringAgeCollector::new("auth_keyring_age_seconds", keyring.clone()) {
            let _ = metrics.registry().register(Box::new(age));
        }
        Self {
            pool,
            keyring,
            refresher: refresher.map(Arc::new),
            hasher,
            throttle: Arc::new(Throttle::new(&config.throttle, metrics.registry())),
            token_lifetime_secs: config.token_lifetime_secs,
            api_token_lifetime_secs: config.api_token_lifetime_secs,
            rules: config.rules,
            metrics,
            request_timeout: config.request_timeout,
            shutdown_grace: config.shutdown_grace,
        }
    }
}
