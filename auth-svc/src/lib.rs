//! auth-svc: register, login and token validation for the Task Management API.
//!
//! The service is a library so tests can drive [`router`] directly or bind port 0 with [`run`].

pub mod api_key;
pub mod config;
pub mod db;
pub mod error;
pub mod jwks;
pub mod keygen;
pub mod logout;
pub mod oauth;
pub mod password;
pub mod revocation;
pub mod routes;
pub mod state;
pub mod throttle;
pub mod token;
pub mod user;
pub mod username_conflicts;
pub mod username_key;

pub use state::AppState;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use oauth::ClientBasicAuth;
use platform::service::BearerAuth;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long [`run`] waits for the first Secrets Manager keyring before giving up.
const KEYRING_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often expired revocations and long-revoked API keys are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// What the system polls on a timer: the load balancer's and the container's health check, and
/// the gateways' pulls of the revocation feed. Their successful answers are access-logged at
/// `debug` ([`platform::http::harden`]).
const POLLED_ROUTES: &[&str] = &["/auth/health", platform::revocation::FEED_PATH];

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-svc", description = "Users, login, API keys (OAuth 2.0 client credentials) and token validation of the Task Management API."),
    components(schemas(platform::ErrorBody)),
    modifiers(&BearerAuth, &ClientBasicAuth),
)]
struct ApiDoc;

/// The routes and their OpenAPI document, from one list so they cannot disagree.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(routes::register))
        .routes(routes!(routes::login))
        .routes(routes!(routes::validate))
        .routes(routes!(jwks::jwks))
        .routes(routes!(logout::logout))
        .routes(routes!(logout::logout_all))
        .routes(routes!(logout::feed))
        .routes(routes!(api_key::routes::create, api_key::routes::list))
        .routes(routes!(api_key::routes::delete))
        .routes(routes!(oauth::token))
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let metrics = state.metrics.clone();
    let timeout = state.request_timeout;
    let api = platform::http::serve_openapi(api, "/auth/openapi.json", &doc);
    platform::http::harden(api.with_state(state), metrics, timeout, POLLED_ROUTES)
}

/// Serves until `shutdown` resolves, then drains in-flight requests for at most the configured
/// grace period. Starts the background work first: the Secrets Manager keyring refresher
/// (waiting up to a minute for the first keyring; no keyring is an error), the pruning of
/// expired revocations and of long-revoked or long-expired API keys, and the throttles' clean-up; logs a warning
/// if renamed accounts await an operator.
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
    background.spawn(prune_forever(state.pool.clone()));
    let served = platform::shutdown::serve(listener, router(state), shutdown, grace).await;
    background.abort_all();
    housekeeping.abort();
    Ok(served?)
}

/// Every [`PRUNE_INTERVAL`]: deletes expired revocations and API keys revoked or expired more
/// than [`api_key::store::KEEP_REVOKED_DAYS`] ago. Failures are logged and retried next time.
async fn prune_forever(pool: sqlx::PgPool) {
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        every.tick().await;
        match revocation::prune(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired revocations pruned"),
            Err(e) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not prune expired revocations");
            }
        }
        match api_key::store::prune_revoked(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "long-revoked or long-expired API keys deleted"),
            Err(e) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not delete long-revoked or long-expired API keys");
            }
        }
    }
}
