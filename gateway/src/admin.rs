//! The admin listener on its own port (`server.metrics`): `GET /metrics` (Prometheus text) and
//! `GET /ready` (200 only once a keyring is loaded; the ECS health check and `gateway
//! healthcheck` probe it). Kept off the proxy port so the ALB never exposes it.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use platform::ErrorBody;
use platform::keyring::store::KeyringStore;

use crate::metrics::Metrics;
use crate::revocation_list::RevocationList;

/// What the admin listener reports on.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub keyring: Arc<KeyringStore>,
    pub revocations: Arc<RevocationList>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/ready", get(ready_handler))
        .fallback(platform::http::not_found)
        .with_state(state)
}

async fn metrics_handler(State(s): State<AdminState>) -> Response {
    // Functions of "now" and of shared state, so set at scrape time.
    s.metrics.keyring_loaded.set(i64::from(s.keyring.is_ready()));
    s.metrics.revocations_live.set(i64::try_from(s.revocations.len()).unwrap_or(i64::MAX));
    s.metrics
        .revocation_list_age
        .set(s.revocations.age().map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

async fn ready_handler(State(s): State<AdminState>) -> Response {
    if s.keyring.is_ready() {
        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "service": "gateway"}))).into_response()
    } else {
        ErrorBody::response(StatusCode::SERVICE_UNAVAILABLE, "No signing keys loaded yet")
    }
}

/// Background service serving [`router`] until pingora shuts down.
pub struct AdminService {
    pub addr: SocketAddr,
    pub state: AdminState,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(self.addr).await {
            Ok(l) => l,
            Err(e) => {
                // Without readiness the ECS health check fails and the task is replaced:
                // loud, but not a reason to drop traffic that is already flowing.
                tracing::error!(addr = %self.addr, error = %e, "cannot listen for metrics/readiness");
                return;
            }
        };
        tracing::info!(addr = %self.addr, "metrics and readiness listening");
        let app = router(self.state.clone());
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    }
}
