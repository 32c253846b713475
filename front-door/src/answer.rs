//! The answers the front door makes itself (its refusals, 404, 405, 502, 503, 504): the
//! contract's error body `{"error", "message", "reason"?}` as `application/json`, with an
//! `X-Request-Id` as every other error response of the stack has.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use platform::error_body::ErrorBody;

use crate::forwarded;
use crate::request_check::Rejection;

use platform::http::REQUEST_ID;

/// The client's one usable `X-Request-Id` (the rule of every service of the stack,
/// [`platform::http::client_request_id`]); `None` when absent, repeated or unusable.
pub fn client_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    platform::http::client_request_id(headers).cloned()
}

/// The id of a request the front door answers itself: the client's usable one
/// ([`client_request_id`]), else a fresh id of the form of the trace ids the front door adds to
/// forwarded requests (`1-<8 hex: epoch seconds>-<24 hex>`, [`forwarded::trace_id`]). A refused
/// head has no headers that can be trusted: `None`, so a fresh id.
pub fn request_id(client: Option<HeaderValue>) -> HeaderValue {
    client.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // A trace id is ASCII letters, digits and '-': always a valid header value.
        HeaderValue::from_str(&forwarded::trace_id(now)).unwrap_or(HeaderValue::from_static("-"))
    })
}

/// The contract's error response: `status`, its reason phrase as `error`, `message`, `reason`
/// when one is defined for the case, and `X-Request-Id: request_id`.
pub fn error(
    status: StatusCode,
    message: impl Into<String>,
    reason: Option<&str>,
    request_id: HeaderValue,
) -> Response {
    let mut body = ErrorBody::new(status, message);
    if let Some(reason) = reason {
        body = body.with_reason(reason);
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(REQUEST_ID, request_id);
    resp
}

/// [`error`] with `Connection: close`: after this answer the connection cannot go on (the
/// bytes after a refused head, or after a broken body, cannot be framed).
pub fn closing(
    status: StatusCode,
    message: impl Into<String>,
    reason: Option<&str>,
    request_id: HeaderValue,
) -> Response {
    let mut resp = error(status, message, reason, request_id);
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The answer to a head the request checks refused, logged with its request id (never the
/// request's bytes) so the client's report can be found in the front door's log.
pub fn refusal(rejection: Rejection, client: std::net::SocketAddr) -> Response {
    let id = request_id(None);
    tracing::info!(
        "refused a request from {client}: {} {} (request id {})",
        rejection.status.as_u16(),
        rejection.reason,
        id.to_str().unwrap_or("-")
    );
    closing(rejection.status, rejection.message, Some(rejection.reason), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("client-id-1"));
        assert_eq!(request_id(client_request_id(&h)), "client-id-1");
        h.append(REQUEST_ID, HeaderValue::from_static("client-id-2"));
        assert_eq!(client_request_id(&h), None, "a repeated id is not taken");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(client_request_id(&h), None);
        let fresh = request_id(None);
        assert_eq!(fresh.len(), 35, "{fresh:?}");
        assert!(fresh.to_str().unwrap_or_default().starts_with("1-"), "{fresh:?}");
        assert!(platform::http::is_usable_request_id(fresh.as_bytes()), "{fresh:?}");
    }
}
