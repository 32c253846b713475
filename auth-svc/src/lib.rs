//! auth-svc: register, login and token validation for the Task Management API.
//!
//! The service is a library so tests can drive [`router`] directly or bind port 0 with [`run`].

pub mod config;
pub mod db;
pub mod error;
pub mod hash_metrics;
pub mod password;
pub mod routes;
pub mod throttle;
pub mod username_conflicts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::keyring::Keyring;
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
    pub keyring: Arc<Keyring>,
    pub hasher: Hasher,
    pub throttle: Arc<Throttle>,
    pub token_lifetime_secs: i64,
    pub leeway_secs: u64,
    pub metrics: HttpMetrics,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl AppState {
    /// Also registers the hashing pool's metrics (`auth_hash_*`) in `metrics`' registry.
    pub fn new(config: Config, pool: PgPool, metrics: HttpMetrics) -> Self {
        let hasher = Hasher::new(config.hash_concurrency, config.hash_queue_timeout);
        if let Err(e) = hasher.metrics().register(metrics.registry()) {
            // Only a second AppState on one registry (tests) gets here; the first one's counts stay.
            tracing::warn!(error = %e, "hashing metrics not registered");
        }
        Self {
            pool,
            keyring: Arc::new(config.keyring),
            hasher,
            throttle: Arc::new(Throttle::new(&config.throttle, metrics.registry())),
            token_lifetime_secs: config.token_lifetime_secs,
            leeway_secs: config.leeway_secs,
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
/// grace period. Meanwhile the throttles' expired state is dropped in the background, and a
/// warning is logged first if renamed accounts await an operator.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.shutdown_grace;
    username_conflicts::warn_if_unresolved(&state.pool).await;
    let housekeeping = state.throttle.spawn_housekeeping(state.pool.clone());
    let served = platform::shutdown::serve(listener, router(state), shutdown, grace).await;
    housekeeping.abort();
    served
}
