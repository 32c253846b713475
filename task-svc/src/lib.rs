//! task-svc: per-user task CRUD for the Task Management API. It knows the caller only from the
//! identity header its gateway sidecar sets, and never sees a token.
//!
//! The service is a library so tests can drive [`router`] directly or bind port 0 with [`run`].

pub mod config;
pub mod dates;
pub mod db;
pub mod error;
pub mod routes;
pub mod task;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use platform::metrics::HttpMetrics;
use platform::service::BearerAuth;
use sqlx::PgPool;
use tokio::net::{TcpListener, UnixListener};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: HttpMetrics,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool, metrics: HttpMetrics) -> Self {
        Self { pool, metrics, request_timeout: config.request_timeout, shutdown_grace: config.shutdown_grace }
    }
}

/// What the system polls on a timer: the load balancer's and the container's health check. Its
/// successful answers are access-logged at `debug` ([`platform::http::harden`]).
const POLLED_ROUTES: &[&str] = &["/tasks/health"];

#[derive(OpenApi)]
#[openapi(
    info(title = "task-svc", description = "Task CRUD of the Task Management API, as served through the gateway (which turns the bearer token into the caller's identity)."),
    components(schemas(platform::ErrorBody)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The routes and their OpenAPI document, from one list so they cannot disagree.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(routes::create_task, routes::list_tasks))
        .routes(routes!(routes::get_task, routes::update_task, routes::delete_task))
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let metrics = state.metrics.clone();
    let timeout = state.request_timeout;
    let api = platform::http::serve_openapi(api, "/tasks/openapi.json", &doc);
    platform::http::harden(api.with_state(state), metrics, timeout, POLLED_ROUTES)
}

/// Serves until `shutdown` resolves, then drains in-flight requests for at most the configured
/// grace period.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.shutdown_grace;
    platform::shutdown::serve(listener, router(state), shutdown, grace).await
}

/// Binds the Unix domain socket at `path` (`UNIX_SOCKET_PATH`), replacing a stale socket file
/// a previous run left behind. Any other kind of file there is an error, never removed.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    UnixListener::bind(path)
}

/// [`run`] on the TCP listener and, when given, the same routes on a Unix domain socket too
/// (the gateway's cheaper path in the same task: no TCP/IP stack, see docs/benchmarks.md).
/// `shutdown` stops both; in-flight requests on either get the configured grace.
pub async fn run_with_unix(
    listener: TcpListener,
    unix: Option<UnixListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(unix) = unix else { return run(listener, state, shutdown).await };
    let grace = state.shutdown_grace;
    let app = router(state);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut unix_stopped = stopped.clone();
    let unix_server = tokio::spawn(
        axum::serve(unix, app.clone())
            .with_graceful_shutdown(async move {
                let _ = unix_stopped.wait_for(|s| *s).await;
            })
            .into_future(),
    );
    let trigger = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let result = platform::shutdown::serve(listener, app, trigger, grace).await;
    // The Unix listener drained alongside; it gets no more than the same grace.
    match tokio::time::timeout(grace, unix_server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "unix socket server failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "unix socket server task failed"),
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    drop(stopped);
    result
}
