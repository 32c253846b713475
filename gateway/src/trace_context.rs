//! The gateway's spans and trace headers: one server span per request (continuing the caller's
//! `traceparent` or the ALB's `X-Amzn-Trace-Id`, see [`platform::trace_header::incoming`]), the
//! authentication decision and its cause as attributes of it, a client span for the call to
//! task-svc and one for the fallback call to auth-svc. The trace headers sent upstream are
//! formatted from our ids (`traceparent` to task-svc; it and `X-Amzn-Trace-Id` to auth-svc);
//! whatever the client sent under those names is replaced or dropped.
//!
//! Spans are made only for a request whose trace is recorded (sampled, with an exporter:
//! [`platform::tracing_otel::TraceStart::record`]). Any other request is traced without them: its
//! trace id and sampling decision are decided up front, passed on with the caller's span as the
//! parent (ours is not recorded) and written on its log lines as a field; that keeps the cost of
//! tracing an unsampled request to parsing its header and formatting one.

use std::cell::Cell;

use http::HeaderValue;
use opentelemetry::trace::{SpanId, TraceId};
use pingora::http::RequestHeader;
use platform::keyring::Rejection;
use platform::trace_header::{TRACEPARENT, TRACESTATE, X_AMZN_TRACE_ID, format_traceparent, format_xray};
use platform::tracing_otel::{RequestSampling, TraceStart};
use tracing::Span;
use tracing::field::Empty;

use crate::decision::Decision;

/// A request's trace: its ids, and its spans when it is recorded.
pub struct RequestTrace {
    /// `{method}` server span: the whole request as the gateway saw it; `Span::none()` unless
    /// the trace is recorded.
    pub server: Span,
    /// `{method}` client span: the call to task-svc, from the request head sent to the response
    /// head received (ended in [`RequestTrace::finish`] at the latest).
    upstream: Span,
    /// The ids passed on for a request whose spans are not recorded.
    ids: TraceIds,
}

/// Whether `name` is a client's trace header that is not forwarded to task-svc: `tracestate`
/// (a vendor's state for the caller's span, not ours) and `X-Amzn-Trace-Id` (task-svc gets the
/// same trace in `traceparent`, which [`RequestTrace::upstream`] replaces).
pub fn is_dropped_trace_header(name: &http::HeaderName) -> bool {
    name == TRACESTATE || name == X_AMZN_TRACE_ID
}

/// What an unrecorded request passes on: its trace, the span named as the parent of its calls
/// (the caller's, or a made-up one when the caller named none) and its decision.
#[derive(Debug, Clone, Copy)]
pub struct TraceIds {
    trace_id: TraceId,
    parent: SpanId,
    sampled: bool,
}

impl Default for RequestTrace {
    fn default() -> Self {
        Self {
            server: Span::none(),
            upstream: Span::none(),
            ids: TraceIds { trace_id: TraceId::INVALID, parent: SpanId::INVALID, sampled: false },
        }
    }
}

impl RequestTrace {
    /// Starts the trace of `req`, in the caller's trace when it sent a valid header; its server
    /// span only when `sampling` records it.
    pub fn start(&mut self, sampling: &RequestSampling, req: &RequestHeader, request_id: &HeaderValue) {
        let incoming = platform::trace_header::incoming(&req.headers).map(|(i, _)| i);
        let start: TraceStart = sampling.start(incoming);
        let parent = start.parent.unwrap_or_else(RequestSampling::new_span_id);
        self.ids = TraceIds { trace_id: start.trace_id, parent, sampled: start.sampled };
        if !start.record {
            return;
        }
        self.server = tracing::info_span!(
            "request",
            otel.name = req.method.as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = req.method.as_str(),
            url.path = &*platform::access_log::path_for_log(req.uri.path()),
            http.response.status_code = Empty,
            request_id = request_id.to_str().unwrap_or("-"),
            auth.decision = Empty,
            auth.reason = Empty,
            auth.cause = Empty,
        );
        platform::tracing_otel::continue_trace(&self.server, Some(start.incoming()));
    }

    /// The request's trace id (32 hex digits when displayed), for its log lines.
    pub fn trace_id(&self) -> TraceId {
        self.ids.trace_id
    }

    /// Whether the request's trace is sampled (recorded where an exporter is configured).
    pub fn sampled(&self) -> bool {
        self.ids.sampled
    }

    /// The ids a fallback call to auth-svc made for this request passes on
    /// ([`fallback_span`]).
    pub fn ids(&self) -> TraceIds {
        self.ids
    }

    /// Starts the client span of the call to task-svc (when recorded) and sets its
    /// `traceparent` on `upstream`, replacing the client's. The client's `tracestate` and
    /// `X-Amzn-Trace-Id` must be gone already ([`is_dropped_trace_header`]; the gateway's
    /// `strip_untrusted` removes them). task-svc continues `traceparent`: an X-Ray header beside
    /// it would say the same and cost the gateway one more header per request.
    pub fn upstream(&mut self, upstream: &mut RequestHeader) -> pingora::Result<()> {
        let ids = if self.server.is_none() {
            Some((self.ids.trace_id, self.ids.parent, self.ids.sampled))
        } else {
            self.upstream = tracing::info_span!(
                parent: &self.server,
                "upstream",
                otel.name = upstream.method.as_str(),
                otel.kind = "client",
                otel.status_code = Empty,
                http.request.method = upstream.method.as_str(),
                url.path = &*platform::access_log::path_for_log(upstream.uri.path()),
                server.address = "task-svc",
                http.response.status_code = Empty,
            );
            platform::tracing_otel::span_ids(&self.upstream)
        };
        match ids {
            Some((trace, span, sampled)) => {
                upstream.insert_header(TRACEPARENT, format_traceparent(trace, span, sampled))?;
            }
            None => {
                upstream.remove_header(TRACEPARENT);
            }
        }
        Ok(())
    }

    /// task-svc's response head arrived: ends the client span with its status.
    pub fn upstream_status(&mut self, status: u16) {
        if self.upstream.is_none() {
            return;
        }
        self.upstream.record("http.response.status_code", status);
        if status >= 500 {
            self.upstream.record("otel.status_code", "ERROR");
        }
        self.upstream = Span::none();
    }

    /// The response is done: records its status on the server span (which ends when the
    /// request's context is dropped) and ends a client span still open (an upstream failure).
    pub fn finish(&mut self, status: u16) {
        if self.server.is_none() {
            return;
        }
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

/// A decision being made off the cache ([`deciding`]): its request's trace, and whether it
/// called auth-svc.
struct Deciding {
    ids: TraceIds,
    fallback_called: Cell<bool>,
}

tokio::task_local! {
    static DECIDING: Deciding;
}

/// Runs `decide` (a decision that is not a cache hit, for the request traced as `ids`) and
/// tells whether it called auth-svc. The fallback call reads `ids` ([`fallback_span`]).
pub async fn deciding(ids: TraceIds, decide: impl Future<Output = Decision>) -> (Decision, Cause) {
    DECIDING
        .scope(Deciding { ids, fallback_called: Cell::new(false) }, async {
            let decision = decide.await;
            let called = DECIDING.try_with(|d| d.fallback_called.get()).unwrap_or(false);
            (decision, if called { Cause::Fallback } else { Cause::LocalVerify })
        })
        .await
}

/// Marks the decision being made (inside [`deciding`]) as one that called auth-svc.
pub fn note_fallback() {
    let _ = DECIDING.try_with(|d| d.fallback_called.set(true));
}

/// The trace id of the request whose decision is being made, for the log lines of that
/// decision; `None` outside [`deciding`].
pub fn current_trace_id() -> Option<TraceId> {
    DECIDING.try_with(|d| d.ids.trace_id).ok().filter(|id| *id != TraceId::INVALID)
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
/// headers that call carries: the span's when the request is recorded (its server span is the
/// current one), else the request's ids with no span at all.
pub fn fallback_span() -> (Span, http::HeaderMap) {
    let mut headers = http::HeaderMap::new();
    if Span::current().is_none() {
        if let Ok(ids) = DECIDING.try_with(|d| d.ids)
            && ids.trace_id != TraceId::INVALID
        {
            headers.insert(TRACEPARENT, format_traceparent(ids.trace_id, ids.parent, ids.sampled));
            headers.insert(X_AMZN_TRACE_ID, format_xray(ids.trace_id, ids.parent, ids.sampled));
        }
        return (Span::none(), headers);
    }
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
    /// process tracing as the gateway does without an exporter; `record`: as if it had one (the
    /// spans are made, nothing is exported). Also the trace id the request's log lines carry.
    fn forwarded(record: bool, headers: &[(&str, &str)]) -> (RequestHeader, TraceId) {
        let settings = platform::tracing_otel::settings(&HashMap::<String, String>::new(), "gateway").unwrap();
        let (tracer, _guard) = platform::tracing_otel::tracer(&settings).unwrap();
        let mut sampled = settings.clone();
        if record {
            sampled.endpoint = Some("http://127.0.0.1:4317".into());
        }
        let sampling = RequestSampling::new(&sampled);
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let mut req = RequestHeader::build("GET", b"/tasks", None).unwrap();
            for (name, value) in headers {
                req.append_header(name.to_string(), *value).unwrap();
            }
            let mut trace = RequestTrace::default();
            trace.start(&sampling, &req, &HeaderValue::from_static("rid"));
            assert_eq!(trace.server.is_none(), !record, "a server span only when recorded");
            // As the gateway's upstream_request_filter does.
            let mut upstream = req.clone();
            crate::proxy::strip_untrusted(&mut upstream);
            trace.upstream(&mut upstream).unwrap();
            (upstream, trace.trace_id())
        })
    }

    fn header<'a>(req: &'a RequestHeader, name: &str) -> Vec<&'a str> {
        req.headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    const CALLER: [(&str, &str); 3] = [
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Evil=x"),
        ("TraceState", "vendor=secret"),
    ];

    /// The parent span id the forwarded `traceparent` names, after checking it keeps the X-Ray
    /// header's trace (it named its caller's span: it wins over traceparent) and its decision,
    /// and that neither `tracestate` nor the client's X-Ray header is passed on.
    fn forwarded_parent(up: &RequestHeader) -> String {
        let tp = header(up, "traceparent");
        assert_eq!(tp.len(), 1);
        assert!(tp[0].starts_with("00-5759e988bd862e3fe1be46a994272793-") && tp[0].ends_with("-01"), "{tp:?}");
        assert!(header(up, "x-amzn-trace-id").is_empty() && header(up, "tracestate").is_empty());
        tp[0][36..52].to_owned()
    }

    #[test]
    fn a_recorded_caller_trace_is_continued_with_our_client_span_as_the_parent() {
        let (up, trace_id) = forwarded(true, &CALLER);
        assert_ne!(forwarded_parent(&up), "53995c3f42cd8ad8", "our client span, not the caller's");
        assert_eq!(trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
    }

    #[test]
    fn an_unrecorded_caller_trace_is_passed_on_under_the_callers_span() {
        // Nothing of ours is recorded: task-svc's spans hang under the caller's.
        let (up, trace_id) = forwarded(false, &CALLER);
        assert_eq!(forwarded_parent(&up), "53995c3f42cd8ad8");
        assert_eq!(trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
    }

    #[test]
    fn malformed_headers_start_a_new_trace_and_are_not_forwarded() {
        for record in [false, true] {
            let (up, trace_id) = forwarded(
                record,
                &[
                    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"),
                    ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a99427279z"),
                ],
            );
            let tp = header(&up, "traceparent");
            assert_eq!(tp.len(), 1);
            assert!(!tp[0].contains("0af7651916cd43dd") && !tp[0].contains("5759e988bd862e3f"), "{tp:?}");
            assert!(tp[0][3..35] == trace_id.to_string(), "the logged trace is the forwarded one: {tp:?}");
            if !record {
                assert!(tp[0].ends_with("-00"), "a new trace, not sampled without an exporter: {tp:?}");
            }
            assert!(header(&up, "x-amzn-trace-id").is_empty());
        }
    }
}
