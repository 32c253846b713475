//! The gateway's spans and trace headers: one server span per request (continuing the caller's
//! `traceparent` or the ALB's `X-Amzn-Trace-Id`, see [`platform::trace_header::incoming`]), the
//! authentication decision and its cause as attributes of it, a client span for the call to
//! task-svc and one for the fallback call to auth-svc. The trace headers sent upstream are
//! formatted from the client span's ids; whatever the client sent under those names is replaced.

use std::cell::Cell;

use http::HeaderValue;
use pingora::http::RequestHeader;
use platform::keyring::Rejection;
use platform::trace_header::{TRACEPARENT, TRACESTATE, X_AMZN_TRACE_ID, format_traceparent, format_xray};
use tracing::Span;
use tracing::field::Empty;

use crate::decision::Decision;

/// A request's spans; both are disabled (`Span::none()`) until [`RequestTrace::start`].
pub struct RequestTrace {
    /// `{method}` server span: the whole request as the gateway saw it.
    pub server: Span,
    /// `{method}` client span: the call to task-svc, from the request head sent to the response
    /// head received (ended in [`RequestTrace::finish`] at the latest).
    upstream: Span,
}

impl Default for RequestTrace {
    fn default() -> Self {
        Self { server: Span::none(), upstream: Span::none() }
    }
}

impl RequestTrace {
    /// Starts the server span for `req`, in the caller's trace when it sent a valid header.
    pub fn start(&mut self, req: &RequestHeader, request_id: &HeaderValue) {
        self.server = tracing::info_span!(
            "request",
            otel.name = req.method.as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = req.method.as_str(),
            url.path = req.uri.path(),
            http.response.status_code = Empty,
            request_id = request_id.to_str().unwrap_or("-"),
            auth.decision = Empty,
            auth.reason = Empty,
            auth.cause = Empty,
        );
        let incoming = platform::trace_header::incoming(&req.headers).map(|(i, _)| i);
        platform::tracing_otel::continue_trace(&self.server, incoming);
    }

    /// Starts the client span of the call to task-svc and sets its trace headers on `upstream`,
    /// replacing the client's (and dropping its `tracestate`).
    pub fn upstream(&mut self, upstream: &mut RequestHeader) -> pingora::Result<()> {
        self.upstream = tracing::info_span!(
            parent: &self.server,
            "upstream",
            otel.name = upstream.method.as_str(),
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = upstream.method.as_str(),
            url.path = upstream.uri.path(),
            server.address = "task-svc",
            http.response.status_code = Empty,
        );
        upstream.remove_header(TRACESTATE);
        match platform::tracing_otel::span_ids(&self.upstream) {
            Some((trace, span, sampled)) => {
                upstream.insert_header(TRACEPARENT, format_traceparent(trace, span, sampled))?;
                upstream.insert_header(X_AMZN_TRACE_ID, format_xray(trace, span, sampled))?;
            }
            None => {
                upstream.remove_header(TRACEPARENT);
                upstream.remove_header(X_AMZN_TRACE_ID);
            }
        }
        Ok(())
    }

    /// task-svc's response head arrived: ends the client span with its status.
    pub fn upstream_status(&mut self, status: u16) {
        self.upstream.record("http.response.status_code", status);
        if status >= 500 {
            self.upstream.record("otel.status_code", "ERROR");
        }
        self.upstream = Span::none();
    }

    /// The response is done: records its status on the server span (which ends when the
    /// request's context is dropped) and ends a client span still open (an upstream failure).
    pub fn finish(&mut self, status: u16) {
        if !self.upstream.is_none() {
            self.upstream.record("otel.status_code", "ERROR");
            self.upstream = Span::none();
        }
        self.server.record("http.response.status_code", status);
        if status >= 500 || status == 0 {
            self.server.record("otel.status_code", "ERROR");
        }
    }
}

/// Where a decision came from (before the revocation check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    CacheHit,
    LocalVerify,
    /// This request called auth-svc (`/auth/validate`).
    Fallback,
}

tokio::task_local! {
    static FALLBACK_CALLED: Cell<bool>;
}

/// Runs `decide` (a decision that is not a cache hit) and tells whether it called auth-svc.
pub async fn deciding(decide: impl Future<Output = Decision>) -> (Decision, Cause) {
    FALLBACK_CALLED
        .scope(Cell::new(false), async {
            let decision = decide.await;
            let called = FALLBACK_CALLED.try_with(Cell::get).unwrap_or(false);
            (decision, if called { Cause::Fallback } else { Cause::LocalVerify })
        })
        .await
}

/// Marks the decision being made (inside [`deciding`]) as one that called auth-svc.
pub fn note_fallback() {
    let _ = FALLBACK_CALLED.try_with(|c| c.set(true));
}

/// Records the authentication decision on the current span (the request's server span while
/// [`crate::authenticator::Authenticator::authenticate`] runs): its labels and its cause:
/// `revocation_refusal`, `cache_hit`, `fallback` (auth-svc was asked) or `local_verify`.
pub fn record_decision(decision: &Decision, cause: Cause) {
    let cause = match (decision, cause) {
        (Decision::Deny(Rejection::Revoked), _) => "revocation_refusal",
        (_, Cause::CacheHit) => "cache_hit",
        (_, Cause::Fallback) => "fallback",
        (_, Cause::LocalVerify) => "local_verify",
    };
    let (label, reason) = decision.labels();
    let span = Span::current();
    span.record("auth.decision", label);
    span.record("auth.reason", reason);
    span.record("auth.cause", cause);
}

/// The client span of the fallback call to auth-svc (`POST /auth/validate`), and the trace
/// headers that call carries.
pub fn fallback_span() -> (Span, http::HeaderMap) {
    let span = tracing::info_span!(
        "fallback",
        otel.name = "POST",
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = "POST",
        url.path = "/auth/validate",
        server.address = "auth-svc",
        http.response.status_code = Empty,
    );
    let mut headers = http::HeaderMap::new();
    platform::tracing_otel::inject(&span, &mut headers);
    (span, headers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// The upstream request head `RequestTrace` makes from a client request with `headers`, in a
    /// process tracing as the gateway does without an exporter.
    fn forwarded(headers: &[(&str, &str)]) -> RequestHeader {
        let settings = platform::tracing_otel::settings(&HashMap::<String, String>::new(), "gateway").unwrap();
        let (tracer, _guard) = platform::tracing_otel::tracer(&settings).unwrap();
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let mut req = RequestHeader::build("GET", b"/tasks", None).unwrap();
            for (name, value) in headers {
                req.append_header(name.to_string(), *value).unwrap();
            }
            let mut trace = RequestTrace::default();
            trace.start(&req, &HeaderValue::from_static("rid"));
            let mut upstream = req.clone();
            trace.upstream(&mut upstream).unwrap();
            upstream
        })
    }

    fn header<'a>(req: &'a RequestHeader, name: &str) -> Vec<&'a str> {
        req.headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn a_valid_caller_trace_is_continued_with_headers_of_our_own() {
        let up = forwarded(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Evil=x"),
            ("tracestate", "vendor=secret"),
        ]);
        let tp = header(&up, "traceparent");
        assert_eq!(tp.len(), 1);
        // The X-Ray header named its caller's span: it wins over traceparent.
        assert!(tp[0].starts_with("00-5759e988bd862e3fe1be46a994272793-") && tp[0].ends_with("-01"), "{tp:?}");
        let span_id = &tp[0][36..52];
        assert_ne!(span_id, "53995c3f42cd8ad8", "our client span, not the caller's");
        let xray = header(&up, "x-amzn-trace-id");
        assert_eq!(xray, vec![format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={span_id};Sampled=1")]);
        assert!(header(&up, "tracestate").is_empty());
    }

    #[test]
    fn malformed_headers_start_a_new_trace_and_are_not_forwarded() {
        let up = forwarded(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"),
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a99427279z"),
        ]);
        let tp = header(&up, "traceparent");
        assert_eq!(tp.len(), 1);
        assert!(!tp[0].contains("0af7651916cd43dd") && !tp[0].contains("5759e988bd862e3f"), "{tp:?}");
        assert!(tp[0].ends_with("-00"), "a new trace, not sampled without an exporter: {tp:?}");
        let xray = header(&up, "x-amzn-trace-id");
        assert_eq!(xray.len(), 1);
        assert!(!xray[0].contains("99427279z") && xray[0].starts_with("Root=1-"), "{xray:?}");
    }
}
