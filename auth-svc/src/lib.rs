//! auth-svc: register, login and token validation for the Task Management API.
//!
//! The service is a library so tests can drive [`router`] directly or bind port 0 with [`run`].

pub mod config;
pub mod db;
pub mod error;
pub mod hash_metrics;
pub mod logout;
pub mod password;
pub mod revocation;
pub mod routes;
pub mod throttle;
pub mod token;
pub mod username_conflicts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::keyring::TokenRules;
use platform::keyring::store::{DEFAULT_MIN_REFRESH_GAP, KeyringAgeCollector, KeyringStore, Refresher};
use platform::metrics::HttpMetrics;
use platform::service::BearerAuth;
use sqlx::PgPool;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::password::Hasher;
use crate::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The keyring in use: fixed (`JWT_SECRET`) or kept current from Secrets Manager.
    pub keyring: Arc<KeyringStore>,
    /// Fills and refreshes [`AppState::keyring`] from Secrets Manager; [`run`] starts it.
    pub refresher: Option<Arc<Refresher>>,
    pub hasher: Hasher,
    pub throttle: Arc<Throttle>,
    pub token_lifetime_secs: i64,
    pub rules: TokenRules,
    pub metrics: HttpMetrics,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// How long [`run`] waits for the first Secrets Manager keyring before giving up.
const KEYRING_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often expired revocations are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

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
            rules: config.rules,
            metrics,
            request_timeout: config.request_timeout,
            shutdown_grace: config.shutdown_grace,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-svc", description = "Users, login and token validation of the Task Management API."),
    components(schemas(platform::ErrorBody)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The routes and their OpenAPI document, from one list so they cannot disagree.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(routes::register))
        .routes(routes!(routes::login))
        .routes(routes!(routes::validate))
        .routes(routes!(logout::logout))
        .routes(routes!(logout::logout_all))
        .routes(routes!(logout::feed))
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let metrics = state.metrics.clone();
    let timeout = state.request_timeout;
    let api = platform::http::serve_openapi(api, "/auth/openapi.json", &doc);
    platform::http::harden(api.with_state(state), metrics, timeout)
}

/// Serves until `shutdown` resolves, then drains in-flight requests for at most the configured
/// grace period. Starts the background work first: the Secrets Manager keyring refresher
/// (waiting up to a minute for the first keyring; no keyring is an error), the pruning of
/// expired revocations and the throttles' clean-up; logs a warning if renamed accounts await
/// an operator.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.shutdown_grace;
    let mut background = tokio::task::JoinSet::new();
    if let Some(refresher) = state.refresher.clone() {
        background.spawn(async move { refresher.run(std::future::pending()).await });
        if !state.keyring.wait_ready(KEYRING_START_TIMEOUT).await {
            anyhow::bail!("no keyring loaded from Secrets Manager within {KEYRING_START_TIMEOUT:?} (JWT_SECRET_ARN)");
        }
    }
    username_conflicts::warn_if_unresolved(&state.pool).await;
    let housekeeping = state.throttle.spawn_housekeeping(state.pool.clone());
    let pool = state.pool.clone();
    background.spawn(async move {
        let mut every = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            every.tick().await;
            match revocation::prune(&pool).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired revocations pruned"),
                Err(e) => tracing::warn!(error = %e, "could not prune expired revocations"),
            }
        }
    });
    let served = platform::shutdown::serve(listener, router(state), shutdown, grace).await;
    background.abort_all();
    housekeeping.abort();
    Ok(served?)
}
