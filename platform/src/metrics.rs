//! Prometheus metrics for the axum services: request counts and a latency histogram by route
//! template, method and status class (low cardinality: never raw paths or ids), 503s by cause,
//! served on their own port. Process metrics and `taskmgmt_build_info` are in
//! [`crate::process_metrics`], the connection pool's in [`crate::pool_metrics`].

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Why a response is 503 Service Unavailable. The code that decides the 503 puts it into the
/// response's extensions ([`crate::http::service_unavailable`]); [`track`] counts it as
/// `http_unavailable_responses_total{cause}`. A 503 without one counts as `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The database could not be reached in time (pool acquire timeout, connection refused,
    /// statement timeout, too many connections): `platform::db::is_unavailable`.
    Database,
    /// auth-svc: every password-hashing slot stayed busy for the whole queue timeout.
    Hashing,
    /// The handler exceeded `REQUEST_TIMEOUT_SECS`.
    Timeout,
    /// auth-svc: no JWT keyring loaded yet, or a keyring refresh needed to decide did not
    /// finish in time (Secrets Manager slow or unreachable).
    Keyring,
}

impl Unavailable {
    /// The `cause` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Hashing => "hashing",
            Self::Timeout => "timeout",
            Self::Keyring => "keyring",
        }
    }
}

#[derive(Clone)]
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    unavailable: IntCounterVec,
}

impl HttpMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route template, method and status class"),
            &["route", "method", "status"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route template and method")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "method"],
        )
        .expect("valid metric definition");
        let unavailable = IntCounterVec::new(
            Opts::new("http_unavailable_responses_total", "503 responses by cause (database, hashing, timeout, other)"),
            &["cause"],
        )
        .expect("valid metric definition");
        registry.register(Box::new(requests.clone())).expect("metric registered once");
        registry.register(Box::new(duration.clone())).expect("metric registered once");
        registry.register(Box::new(unavailable.clone())).expect("metric registered once");
        Self { registry, requests, duration, unavailable }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests.with_label_values(&[route, method, status_class(status)]).inc();
        self.duration.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }

    /// Counts one 503 by its cause (`None`: a 503 nobody labelled, counted as `other`).
    pub fn observe_unavailable(&self, cause: Option<Unavailable>) {
        self.unavailable.with_label_values(&[cause.map_or("other", Unavailable::label)]).inc();
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Only known methods become label values; anything else is "other".
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware recording every request. Add it with `Router::layer` so `MatchedPath` is known.
pub async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    metrics.observe(&route, method, response.status().as_u16(), start.elapsed());
    if response.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        metrics.observe_unavailable(response.extensions().get::<Unavailable>().copied());
    }
    response
}

/// The metrics endpoint's router: `GET /metrics`.
pub fn router(registry: Registry) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render(&registry)).into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_show_up_by_route_template_and_class() {
        let m = HttpMetrics::new();
        m.observe("/tasks/{id}", "GET", 404, Duration::from_millis(3));
        m.observe("/tasks/{id}", "GET", 200, Duration::from_millis(3));
        m.observe("/tasks/{id}", "GET", 204, Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(r#"http_requests_total{method="GET",route="/tasks/{id}",status="2xx"} 2"#), "{text}");
        assert!(text.contains(r#"http_requests_total{method="GET",route="/tasks/{id}",status="4xx"} 1"#), "{text}");
        assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    }

    #[test]
    fn unavailable_responses_count_by_cause() {
        let m = HttpMetrics::new();
        m.observe_unavailable(Some(Unavailable::Database));
        m.observe_unavailable(Some(Unavailable::Database));
        m.observe_unavailable(Some(Unavailable::Hashing));
        m.observe_unavailable(None);
        let text = m.render();
        assert!(text.contains(r#"http_unavailable_responses_total{cause="database"} 2"#), "{text}");
        assert!(text.contains(r#"http_unavailable_responses_total{cause="hashing"} 1"#), "{text}");
        assert!(text.contains(r#"http_unavailable_responses_total{cause="other"} 1"#), "{text}");
    }

    #[tokio::test]
    async fn track_reads_the_cause_a_handler_attached_to_its_503() {
        use tower::ServiceExt;
        let metrics = HttpMetrics::new();
        let app = Router::new()
            .route("/db", get(|| async { crate::http::service_unavailable(Unavailable::Database, "down") }))
            .route("/plain", get(|| async { http::StatusCode::SERVICE_UNAVAILABLE }))
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn_with_state(metrics.clone(), track));
        for path in ["/db", "/db", "/plain", "/ok"] {
            let req = http::Request::get(path).body(axum::body::Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let text = metrics.render();
        assert!(text.contains(r#"http_unavailable_responses_total{cause="database"} 2"#), "{text}");
        assert!(text.contains(r#"http_unavailable_responses_total{cause="other"} 1"#), "{text}");
        assert!(!text.contains(r#"cause="timeout""#), "{text}");
    }
}
