//! The services' access log: one `finished processing request` event per request (method,
//! path, request id, status, latency), from `tower_http`'s trace layer.
//!
//! Routes that other parts of the system poll on a timer (load balancer and container health
//! checks, the gateways' pulls of the revocation feed) answer every few seconds per caller; at
//! `info` they would bury the requests a person made. Their successful answers are logged at
//! `debug` (`RUST_LOG=debug` shows them); a failed poll (4xx, 5xx) stays at `info`, because a
//! failing health check or feed is news.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::trace::{DefaultOnResponse, OnResponse};
use tracing::{Level, Span};

/// Marks a response to a polled route (set by [`mark_polled`], read by [`on_response`]).
#[derive(Debug, Clone, Copy)]
struct Polled;

/// The request's span: the access log's fields (`method`, `path`, `request_id`) and the
/// OpenTelemetry HTTP server attributes (semantic conventions 1.x: span name `{method} {route}`,
/// `http.request.method`, `url.path`, `http.route`, `http.response.status_code`, set by
/// [`on_response`]).
pub(crate) fn server_span(req: &Request, request_id: &str) -> Span {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{} {route}", req.method()),
        None => req.method().to_string(),
    };
    tracing::info_span!(
        "request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        method = %req.method(),
        path = %req.uri().path(),
        request_id,
    )
}

/// Middleware: marks the responses to requests whose path is one of `polled` (exact paths, e.g.
/// `/auth/health`), so that [`on_response`] can log them quietly.
pub(crate) async fn mark_polled(polled: &'static [&'static str], req: Request, next: Next) -> Response {
    let is_polled = polled.contains(&req.uri().path());
    let mut response = next.run(req).await;
    if is_polled {
        response.extensions_mut().insert(Polled);
    }
    response
}

/// The access-log event for `response`: `debug` for a successful answer to a polled route,
/// `info` for everything else. Same fields as `tower_http`'s default (`latency` in ms,
/// `status`).
pub(crate) fn on_response(response: &Response, latency: Duration, span: &Span) {
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let quiet = response.extensions().get::<Polled>().is_some() && response.status().is_success();
    let level = if quiet { Level::DEBUG } else { Level::INFO };
    DefaultOnResponse::new().level(level).on_response(response, latency, span);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::get;
    use http::StatusCode;
    use tower::ServiceExt;
    use tracing_subscriber::fmt::MakeWriter;

    use crate::metrics::HttpMetrics;

    /// The formatted events, shared with the subscriber that writes them.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The access log of `paths`, requested in order through `harden`, at `level`.
    async fn access_log(level: tracing::Level, paths: &[&str]) -> Vec<String> {
        let app = crate::http::harden(
            Router::new()
                .route("/svc/health", get(|| async { "ok" }))
                .route("/svc/feed", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
                .route("/svc/things", get(|| async { "things" })),
            HttpMetrics::new(),
            Duration::from_secs(5),
            &["/svc/health", "/svc/feed"],
        );
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_writer(captured.clone());
        let _guard = tracing::subscriber::set_default(subscriber.finish());
        for path in paths {
            let req = http::Request::get(*path).body(axum::body::Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().filter(|l| l.contains("finished processing request")).map(str::to_owned).collect()
    }

    use super::*;

    #[tokio::test]
    async fn a_passing_health_check_is_logged_at_debug_and_a_real_request_at_info() {
        let info = access_log(Level::INFO, &["/svc/health", "/svc/things", "/svc/health"]).await;
        assert_eq!(info.len(), 1, "{info:#?}");
        assert!(info[0].contains("INFO") && info[0].contains("path=/svc/things"), "{info:#?}");

        let debug = access_log(Level::DEBUG, &["/svc/health", "/svc/things"]).await;
        assert_eq!(debug.len(), 2, "{debug:#?}");
        assert!(debug[0].contains("DEBUG") && debug[0].contains("path=/svc/health"), "{debug:#?}");
    }

    #[tokio::test]
    async fn a_failing_poll_stays_at_info() {
        let info = access_log(Level::INFO, &["/svc/feed"]).await;
        assert_eq!(info.len(), 1, "{info:#?}");
        assert!(info[0].contains("path=/svc/feed") && info[0].contains("status=503"), "{info:#?}");
    }
}
