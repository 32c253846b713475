//! The HTTP hardening both axum services share: JSON error bodies for every failure (including
//! axum's own rejections, unknown routes and 405s), a body limit, a request timeout, request ids,
//! tracing spans and metrics.

use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::ErrorBody;
use crate::error_body::reason;
use crate::metrics::{HttpMetrics, Unavailable};

/// The hop-by-hop header fields a proxy removes before forwarding, in lower case (how `http`
/// stores names): RFC 9110 §7.6.1's `Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`,
/// `Upgrade`; `Trailer` and the proxy authentication fields `Proxy-Authenticate` and
/// `Proxy-Authorization` (RFC 9110 §11.7.1-2: meant for the next hop only). Add to them any field
/// the `Connection` header names. `Transfer-Encoding` is hop-by-hop too (RFC 9112 §6.1) but is
/// not listed: it belongs to whoever frames the body (pingora in the gateway; the front door and
/// the bench's proxy remove it themselves because they re-frame).
///
/// One list for the gateway, the front door and the bench.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` is one of [`HOP_BY_HOP`], in any case. Allocates nothing.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Request bodies larger than this get 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A JSON body extractor whose rejections are the contract's error body, not axum's plain text.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// serde_json's message about a client's body, in the client's terms: the Rust type names it
/// can carry (`expected struct RegisterRequest`, `expected a map`) become `expected a JSON
/// object`, and the ` at line L column C` suffix is dropped. Field names, expected value types
/// and the allowed values of an enum are kept: they describe the contract.
pub fn body_error_detail(serde_message: &str) -> String {
    let mut m = serde_message.trim().to_owned();
    if let Some(i) = m.rfind(" at line ")
        && m[i..].contains(" column ")
    {
        m.truncate(i);
    }
    while let Some(i) = m.find("struct ") {
        let name_len = m[i + 7..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(m.len() - i - 7);
        m.replace_range(i..i + 7 + name_len, "a JSON object");
    }
    m.replace("a map", "a JSON object").replace("a sequence", "a JSON array")
}

fn json_rejection(rejection: &JsonRejection) -> Response {
    let (status, message) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::BAD_REQUEST, "Content-Type must be application/json".to_owned())
        }
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "Request body is not valid JSON".to_owned()),
        JsonRejection::JsonDataError(e) => {
            // serde's message describes the client's input (field names, expected types).
            let detail = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
            (StatusCode::BAD_REQUEST, format!("Invalid request body: {}", body_error_detail(&detail)))
        }
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than {} KiB", BODY_LIMIT_BYTES / 1024))
        }
        _ => (StatusCode::BAD_REQUEST, "Request body could not be read".to_owned()),
    };
    contract_body(status, message)
}

/// The contract's body for `status`, with the edge's `reason` where the cause is the same as
/// one of the edge's (413: [`reason::BODY_TOO_LARGE`], 429: [`reason::RATE_LIMITED`]).
fn contract_body(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody::new(status, message);
    let body = match status {
        StatusCode::PAYLOAD_TOO_LARGE => body.with_reason(reason::BODY_TOO_LARGE),
        StatusCode::TOO_MANY_REQUESTS => body.with_reason(reason::RATE_LIMITED),
        _ => body,
    };
    (status, axum::Json(body)).into_response()
}

/// Replaces any error response that is not already JSON (axum's 404 fallback, 405 with `Allow`,
/// 413 from the body limit, timeouts) with the contract's error body, keeping its headers.
async fn json_error_bodies(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut fresh = contract_body(status, ErrorBody::default_message(status));
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *fresh.status_mut() = status;
    fresh
}

/// 503 with the contract's body, `Retry-After: 1`, and `cause` in the response's extensions so
/// the metrics middleware counts it as `http_unavailable_responses_total{cause}`.
pub fn service_unavailable(cause: Unavailable, message: &str) -> Response {
    let mut response = ErrorBody::response(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response.extensions_mut().insert(cause);
    response
}

/// 500 with the contract's default message. `error`'s whole cause chain goes to the log as one
/// `error` field (`outer: cause: root cause`) under `message`; none of it goes to the response.
pub fn internal_error(message: &'static str, error: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{error:#}"), "{message}");
    ErrorBody::response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorBody::default_message(StatusCode::INTERNAL_SERVER_ERROR),
    )
}

/// Answers 503 with `Retry-After` when a handler takes longer than `timeout`.
async fn request_timeout(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            service_unavailable(Unavailable::Timeout, "Request timed out, retry later")
        }
    }
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> Response {
    ErrorBody::response(StatusCode::NOT_FOUND, ErrorBody::default_message(StatusCode::NOT_FOUND))
}

/// Wraps a service's routes in the shared stack, outermost first: request id, tracing span and
/// access log, metrics, JSON error bodies, request timeout, body limit.
///
/// `polled` are the exact paths other parts of the system call on a timer (health checks, the
/// revocation feed): their successful answers go to the access log at `debug`, not `info`
/// (see [`crate::access_log`]).
pub fn harden(router: Router, metrics: HttpMetrics, timeout: Duration, polled: &'static [&'static str]) -> Router {
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn(move |req, next| request_timeout(timeout, req, next)))
        .layer(middleware::from_fn(json_error_bodies))
        .layer(middleware::from_fn_with_state(metrics, crate::metrics::track))
        .layer(middleware::from_fn(move |req, next| crate::access_log::mark_polled(polled, req, next)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    let span = crate::access_log::server_span(req, request_id);
                    // The caller's trace (the gateway's `traceparent`, the ALB's X-Amzn-Trace-Id).
                    let incoming = crate::trace_header::incoming(req.headers()).map(|(i, _)| i);
                    crate::tracing_otel::continue_trace(&span, incoming);
                    span
                })
                .on_response(crate::access_log::on_response),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(drop_unusable_request_id))
}

/// Whether a client's `X-Request-Id` is kept (logged and echoed): 1-128 characters of
/// `[A-Za-z0-9-_.:]`. The gateway applies the same rule; anything else is replaced by a fresh
/// id, so a client cannot put spaces, quotes, markup or kilobytes into every log line.
pub fn is_usable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

/// The request id header of the stack.
pub const REQUEST_ID: &str = "x-request-id";

/// The client's one `X-Request-Id`, when [`is_usable_request_id`] accepts it; `None` when it is
/// absent, repeated or unusable.
pub fn client_request_id(headers: &http::HeaderMap) -> Option<&HeaderValue> {
    let mut ids = headers.get_all(REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (Some(one), None) if is_usable_request_id(one.as_bytes()) => Some(one),
        _ => None,
    }
}

/// Removes an `X-Request-Id` that [`client_request_id`] refuses (unusable or repeated), before
/// `SetRequestIdLayer` runs, so it generates a fresh one.
async fn drop_unusable_request_id(mut req: Request, next: Next) -> Response {
    if req.headers().contains_key(REQUEST_ID) && client_request_id(req.headers()).is_none() {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// A query-string extractor whose rejections are the contract's error body, naming the
/// parameter whose value was refused (``Invalid query string: `limit`: invalid digit found in
/// string``).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(pairs).map(Self).map_err(|e| {
            // The path is `.` when the error is the whole query's (a repeated parameter names
            // itself in the message), and an unknown parameter's message names it already.
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            let message = if path == "." || inner.starts_with("unknown field") {
                format!("Invalid query string: {inner}")
            } else {
                format!("Invalid query string: `{path}`: {inner}")
            };
            ErrorBody::response(StatusCode::BAD_REQUEST, message)
        })
    }
}

/// Adds `GET path` serving `doc` (serialised once) to a service's routes.
pub fn serve_openapi<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &str,
    doc: &utoipa::openapi::OpenApi,
) -> Router<S> {
    let doc = serde_json::to_string(doc).unwrap_or_default();
    router.route(
        path,
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
        }),
    )
}

#[cfg(test)]
mod body_error_tests {
    use super::body_error_detail;

    #[test]
    fn rust_type_names_and_positions_do_not_reach_the_client() {
        let cases = [
            (
                "invalid type: string \"hello\", expected struct RegisterRequest at line 1 column 7",
                "invalid type: string \"hello\", expected a JSON object",
            ),
            (
                "invalid type: sequence, expected a map at line 1 column 0",
                "invalid type: sequence, expected a JSON object",
            ),
            ("invalid type: null, expected struct NewTask_v2", "invalid type: null, expected a JSON object"),
            (
                "invalid type: integer `123`, expected a string at line 1 column 16",
                "invalid type: integer `123`, expected a string",
            ),
            ("missing field `username`", "missing field `username`"),
            (
                "unknown variant `later`, expected one of `todo`, `in_progress`, `done`",
                "unknown variant `later`, expected one of `todo`, `in_progress`, `done`",
            ),
        ];
        for (serde, client) in cases {
            let out = body_error_detail(serde);
            assert_eq!(out, client);
            assert!(!out.contains("struct") && !out.contains("line 1"), "{out}");
        }
    }
}

#[cfg(test)]
mod hop_by_hop_tests {
    use super::is_hop_by_hop;

    #[test]
    fn hop_by_hop_names_match_in_any_case_and_only_those() {
        for name in ["connection", "Keep-Alive", "TE", "proxy-authorization", "Upgrade", "trailer"] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["authorization", "content-length", "transfer-encoding", "host", "x-user-id", "tes"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }
}
