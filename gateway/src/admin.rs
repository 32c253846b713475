//! The admin listener on its own port (`server.metrics`): `GET /metrics` (Prometheus text),
//! `GET /metrics/task-svc` (task-svc's own metrics, passed through from its loopback listener)
//! and `GET /ready` (200 only once a keyring is loaded and a revocation list pulled; the ECS
//! health check and `gateway healthcheck` probe it). Kept off the proxy port so the ALB never exposes it.
//!
//! Why task-svc's metrics go through the gateway: task-svc listens on loopback only, and an ECS
//! service can publish one Cloud Map service registry (one SRV port) per task. Passing them
//! through keeps task-svc unreachable from the network and lets one SRV record (the gateway's
//! metrics port) serve both scrape jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

use crate::decision::Unavailable;
use crate::metrics::Metrics;
use crate::revocation_list::RevocationList;

/// Path under which task-svc's metrics are served.
pub const TASK_SVC_METRICS_PATH: &str = "/metrics/task-svc";

/// Longest wait for task-svc's metrics; below Prometheus' default scrape timeout (10 s).
const UPSTREAM_METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener reports on.
#[derive(Clone)]
pub struct AdminState {
    metrics: Metrics,
    keyring: Arc<KeyringStore>,
    revocations: Arc<RevocationList>,
    upstream_metrics: Option<SocketAddr>,
    http: reqwest::Client,
}

impl AdminState {
    /// `upstream_metrics` is task-svc's metrics listener (`None`: the pass-through answers 404).
    pub fn new(
        metrics: Metrics,
        keyring: Arc<KeyringStore>,
        revocations: Arc<RevocationList>,
        upstream_metrics: Option<SocketAddr>,
    ) -> Self {
        // Loopback only, no proxy from the environment, no redirects.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(UPSTREAM_METRICS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { metrics, keyring, revocations, upstream_metrics, http }
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route(TASK_SVC_METRICS_PATH, get(upstream_metrics_handler))
        .route("/ready", get(ready_handler))
        .fallback(platform::http::not_found)
        .with_state(state)
}

async fn metrics_handler(State(s): State<AdminState>) -> Response {
    // Functions of "now" and of shared state, so set at scrape time.
    s.metrics.keyring_loaded.set(i64::from(s.keyring.is_ready()));
    s.metrics.revocations_live.set(i64::try_from(s.revocations.len()).unwrap_or(i64::MAX));
    s.metrics.revocation_list_age.set(i64::try_from(s.revocations.unknown_for().as_secs()).unwrap_or(i64::MAX));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

/// task-svc's `/metrics`, body and content type unchanged; 502 when task-svc does not answer
/// (Prometheus then records `up == 0` for the task-svc job).
async fn upstream_metrics_handler(State(s): State<AdminState>) -> Response {
    let Some(addr) = s.upstream_metrics else {
        return platform::http::not_found().await;
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(%addr, error = %e, "task-svc metrics unavailable");
        let body = ErrorBody::new(StatusCode::BAD_GATEWAY, "task-svc metrics are unavailable")
            .with_reason(platform::error_body::reason::UPSTREAM_UNAVAILABLE);
        (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
    };
    let response = match s.http.get(format!("http://{addr}/metrics")).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return unavailable(&r.status()),
        Err(e) => return unavailable(&e),
    };
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(http::HeaderValue::from_static("text/plain; version=0.0.4"));
    match response.bytes().await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// 200 once a keyring is loaded and a revocation list pulled; otherwise 503 with the
/// contract's body and a `reason` (`no_keyring`, `revocation_pending`): the gateway would answer
/// every token request with 503.
async fn ready_handler(State(s): State<AdminState>) -> Response {
    let unready = |reason: &str, message: &str| {
        let body = ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, message).with_reason(reason);
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    if !s.keyring.is_ready() {
        return unready(Unavailable::NoKeyring.reason(), "No signing keys loaded yet");
    }
    if !s.revocations.is_pulled() {
        let message = "No revocation list has been pulled from auth-svc yet";
        return unready(Unavailable::RevocationPending.reason(), message);
    }
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "service": "gateway"}))).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let req = http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let r = app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let ct = r.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), ct)
    }

    fn state(upstream_metrics: Option<SocketAddr>) -> AdminState {
        let revocations = Arc::new(RevocationList::default());
        AdminState::new(Metrics::new(), Arc::new(KeyringStore::refreshable()), revocations, upstream_metrics)
    }

    #[tokio::test]
    async fn not_ready_until_a_keyring_is_loaded_and_a_revocation_list_pulled() {
        let secret = platform::Secret::new("ready-test-secret-0123456789abcdefghijkl");
        let keyring = Arc::new(KeyringStore::fixed(platform::keyring::Keyring::new(&secret, None).unwrap()));
        let revocations = Arc::new(RevocationList::default());
        let app = router(AdminState::new(Metrics::new(), keyring, revocations.clone(), None));
        let (status, text, _) = get(&app, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["reason"], "revocation_pending", "{body}");
        assert_eq!(body["error"], "Service Unavailable", "{body}");
        // The list has no known age yet: it counts from the start, never -1, so the stale-list
        // alert fires for a gateway that never pulls.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, metrics, _) = get(&app, "/metrics").await;
        let age = metrics
            .lines()
            .find_map(|l| l.strip_prefix("gateway_revocation_list_age_seconds "))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap();
        assert!(age >= 1, "{age}");

        revocations.mark_pulled();
        let (status, text, _) = get(&app, "/ready").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let (_, metrics, _) = get(&app, "/metrics").await;
        assert!(metrics.contains("\ngateway_revocation_list_age_seconds 0\n"), "{metrics}");
    }

    #[tokio::test]
    async fn task_svc_metrics_are_passed_through_unchanged() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let body = "# TYPE http_requests_total counter\nhttp_requests_total{route=\"/tasks\"} 3\n";
        let task_metrics = Router::new().route(
            "/metrics",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }),
        );
        tokio::spawn(async move { axum::serve(upstream, task_metrics).await });
        let app = router(state(Some(addr)));
        let (status, text, ct) = get(&app, TASK_SVC_METRICS_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, body);
        assert_eq!(ct.as_deref(), Some("text/plain; version=0.0.4"));
        // The gateway's own metrics stay on /metrics.
        let (_, own, _) = get(&app, "/metrics").await;
        assert!(own.contains("taskmgmt_build_info{service=\"gateway\""), "{own}");
        assert!(!own.contains("http_requests_total"), "{own}");
    }

    #[tokio::test]
    async fn a_silent_task_svc_is_a_json_502_and_off_is_404() {
        // A port nobody listens on: bind, note it, close.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let app = router(state(Some(closed)));
        let (status, text, _) = get(&app, TASK_SVC_METRICS_PATH).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "Bad Gateway");
        assert_eq!(body["reason"], "upstream_unavailable", "the proxy port's reason for the same failure");
        let app = router(state(None));
        assert_eq!(get(&app, TASK_SVC_METRICS_PATH).await.0, StatusCode::NOT_FOUND);
    }
}
