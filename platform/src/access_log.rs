//! The services' access log: one `finished processing request` event per request (method,
//! path, request id, status, latency), from `tower_http`'s trace layer.
//!
//! Routes that other parts of the system poll on a timer (load balancer and container health
//! checks, the gateways' pulls of the revocation feed) answer every few seconds per caller; at
//! `info` they would bury the requests a person made. Their successful answers are logged at
//! `debug` (`RUST_LOG=debug` shows them); a failed poll (4xx, 5xx) stays at `info`, because a
//! failing health check or feed is news.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::trace::{DefaultOnResponse, OnResponse};
use tracing::{Level, Span};

/// What a log line or a trace holds in place of a credential found in a path.
pub const REDACTED: &str = "[redacted]";

/// `path` as a log line or a span may hold it: every segment holding a JWT (RFC 7519 section 3:
/// base64url parts joined by `.`, three for a JWS, five for a JWE; the first is a JSON object,
/// which as every issuer writes it, `{"`, begins `eyJ`) is replaced by [`REDACTED`], so a client
/// that puts its token in a path does not leave a bearer credential in the access log or a trace
/// (the query string is never logged). A segment is read percent-decoded, as the services read
/// it (`%2E` is a dot). A segment that only looks like a token (`eyJ`, base64url, two dots) is
/// redacted too. Linear in the path's length; borrows when nothing is redacted.
pub fn path_for_log(path: &str) -> Cow<'_, str> {
    if !path.contains(JWT_START) && !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let holds = |segment: &str| {
        if segment.contains('%') {
            holds_jwt(&percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
        } else {
            holds_jwt(segment)
        }
    };
    if !path.split('/').any(holds) {
        return Cow::Borrowed(path);
    }
    let mut redacted = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            redacted.push('/');
        }
        redacted.push_str(if holds(segment) { REDACTED } else { segment });
    }
    Cow::Owned(redacted)
}

/// base64url of `{"`: how every JWT's header begins.
const JWT_START: &str = "eyJ";

/// Whether `segment` holds `eyJ` followed by base64url characters and at least two dots, in one
/// pass: each run of base64url characters and dots is read once, from its first `eyJ` (a later
/// `eyJ` in the same run is followed by no more dots than the first).
fn holds_jwt(segment: &str) -> bool {
    let token_byte = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let mut rest = segment.as_bytes();
    while !rest.is_empty() {
        let run_len = rest.iter().take_while(|b| token_byte(b)).count();
        let run = &rest[..run_len];
        let start = run.windows(JWT_START.len()).position(|w| w == JWT_START.as_bytes());
        if start.is_some_and(|at| run[at..].iter().filter(|b| **b == b'.').nth(1).is_some()) {
            return true;
        }
        rest = &rest[(run_len + 1).min(rest.len())..];
    }
    false
}

/// Marks a response to a polled route (set by [`mark_polled`], read by [`on_response`]).
#[derive(Debug, Clone, Copy)]
struct Polled;

/// The request's span: the access log's fields (`method`, `path`, `request_id`) and the
/// OpenTelemetry HTTP server attributes (semantic conventions 1.x: span name `{method} {route}`,
/// `http.request.method`, `url.path`, `http.route`, `http.response.status_code`, set by
/// [`on_response`]).
pub(crate) fn server_span(req: &Request, request_id: &str) -> Span {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
    let path = path_for_log(req.uri().path());
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
        url.path = &*path,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        method = %req.method(),
        path = &*path,
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
        assert!(info[0].contains("INFO") && info[0].contains("path=\"/svc/things\""), "{info:#?}");

        let debug = access_log(Level::DEBUG, &["/svc/health", "/svc/things"]).await;
        assert_eq!(debug.len(), 2, "{debug:#?}");
        assert!(debug[0].contains("DEBUG") && debug[0].contains("path=\"/svc/health\""), "{debug:#?}");
    }

    #[test]
    fn a_segment_holding_a_jwt_is_redacted_and_the_rest_of_the_path_kept() {
        let jws = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_";
        let jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d";
        for (path, logged) in [
            ("/tasks/4", "/tasks/4"),
            (&format!("/tasks/{jws}") as &str, "/tasks/[redacted]"),
            (&format!("/tasks/{jws}/x"), "/tasks/[redacted]/x"),
            (&format!("/tasks/token={jws}"), "/tasks/[redacted]"),
            (&format!("/{jwe}/{jws}"), "/[redacted]/[redacted]"),
            // Not a token: one dot, no `eyJ`, or the dots outside the run that follows `eyJ`.
            ("/tasks/eyJhbGciOiJIUzI1NiJ9.e30", "/tasks/eyJhbGciOiJIUzI1NiJ9.e30"),
            ("/tasks/a.b.c", "/tasks/a.b.c"),
            ("/tasks/eyJ~a.b.c", "/tasks/eyJ~a.b.c"),
            // Percent-encoded dots or letters, as a service decodes them.
            (&format!("/tasks/{}", jws.replace('.', "%2E")), "/tasks/[redacted]"),
            (&format!("/tasks/{}", jws.replace('.', "%2e")), "/tasks/[redacted]"),
            ("/tasks/%65yJhbGciOiJIUzI1NiJ9.e30.c2ln/1", "/tasks/[redacted]/1"),
            ("/tasks/a%20b/eyJhbGciOiJIUzI1NiJ9", "/tasks/a%20b/eyJhbGciOiJIUzI1NiJ9"),
        ] {
            assert_eq!(path_for_log(path), logged, "{path}");
        }
        for path in ["/tasks/4", "/tasks/eyJ.a", "/tasks/a%2Eb"] {
            assert!(matches!(path_for_log(path), Cow::Borrowed(_)), "{path}");
        }
    }

    /// Long segments (a target can be 64 KiB before a limit answers it): `eyJ` over and over with
    /// no dot is kept; dots far after the `eyJ` still make a token.
    #[test]
    fn a_long_segment_is_kept_unless_it_holds_a_token() {
        let no_dots = format!("/tasks/{}", "eyJ".repeat(64 * 1024 / 3));
        assert_eq!(path_for_log(&no_dots), no_dots);
        let far_dots = format!("/tasks/{}.{}", "eyJ".repeat(10_000), "a".repeat(30_000));
        assert_eq!(path_for_log(&far_dots), far_dots);
        assert_eq!(path_for_log(&format!("{far_dots}.c")), "/tasks/[redacted]");
    }

    #[tokio::test]
    async fn a_token_in_a_path_stays_out_of_the_access_log() {
        let jws = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let info = access_log(Level::INFO, &[&format!("/svc/things/{jws}")]).await;
        assert_eq!(info.len(), 1, "{info:#?}");
        assert!(info[0].contains("path=\"/svc/things/[redacted]\"") && !info[0].contains("eyJ"), "{info:#?}");
    }

    #[tokio::test]
    async fn a_failing_poll_stays_at_info() {
        let info = access_log(Level::INFO, &["/svc/feed"]).await;
        assert_eq!(info.len(), 1, "{info:#?}");
        assert!(info[0].contains("path=\"/svc/feed\"") && info[0].contains("status=503"), "{info:#?}");
    }
}
