//! The one error body of the HTTP contract: `{"error": "<reason phrase>", "message": "<text>"}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The `reason`s of the edge's own answers, one spelling for the gateway and the front door
/// (the ALB's stand-in), so a client reads the same cause whichever of them refused it; the
/// services give the same `reason` for the same cause (a body over their limit, a 429).
pub mod reason {
    /// 400: a request head, target or body framing RFC 9112 forbids, or a body cut short.
    pub const MALFORMED_REQUEST: &str = "malformed_request";
    /// 431 (gateway) or 400 (front door, as the ALB): a header line or the whole head too large.
    pub const HEADERS_TOO_LARGE: &str = "headers_too_large";
    /// 431: more header fields than the limit.
    pub const TOO_MANY_HEADERS: &str = "too_many_headers";
    /// 414: a request target longer than the limit.
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// 413: a body longer than the limit.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// 501: a `Transfer-Encoding` other than `chunked`.
    pub const UNSUPPORTED_TRANSFER_ENCODING: &str = "unsupported_transfer_encoding";
    /// 405: `CONNECT` (the gateway and the front door) or `TRACE` (the front door, as the ALB).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 502: the target refused the connection, or reset or closed it without an answer.
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
    /// 504: the target did not answer in time.
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// 503 (front door): no target of the route passes its health checks.
    pub const NO_HEALTHY_TARGET: &str = "no_healthy_target";
    /// 429: over a rate (the gateway's per-subject limits; auth-svc's throttles of failed
    /// logins, of requests per client address, of logouts and of API-key changes).
    pub const RATE_LIMITED: &str = "rate_limited";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The status code's reason phrase, e.g. "Bad Request".
    pub error: String,
    /// A human-readable explanation that never contains internals.
    pub message: String,
    /// A stable machine-readable cause for clients and our own services (e.g. `expired`,
    /// `revoked` on a 401), present where one is defined. Never matched on `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { error: status.canonical_reason().unwrap_or("Error").to_owned(), message: message.into(), reason: None }
    }

    /// The same body with a machine-readable `reason`.
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// The body as JSON bytes, for code that writes responses without axum (the gateway).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serialising two strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A response with this body and the given status.
    pub fn response(status: StatusCode, message: impl Into<String>) -> Response {
        (status, Json(Self::new(status, message))).into_response()
    }

    /// The default message used when a response had no body of ours (404, 405, 408, ...).
    pub fn default_message(status: StatusCode) -> &'static str {
        match status {
            StatusCode::NOT_FOUND => "The requested resource does not exist",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed for this resource",
            StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large",
            StatusCode::REQUEST_TIMEOUT => "Request timed out",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Expected a JSON body with Content-Type: application/json",
            StatusCode::UNAUTHORIZED => "Authentication required",
            StatusCode::FORBIDDEN => "You do not have permission to access this resource",
            StatusCode::SERVICE_UNAVAILABLE => "Service temporarily unavailable, retry later",
            s if s.is_server_error() => "An internal error occurred",
            _ => "The request could not be processed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_field_is_the_reason_phrase() {
        let body = ErrorBody::new(StatusCode::CONFLICT, "taken");
        assert_eq!(body.error, "Conflict");
        let json: serde_json::Value = serde_json::from_slice(&body.to_json_bytes()).unwrap();
        assert_eq!(json, serde_json::json!({"error": "Conflict", "message": "taken"}));
        let body = ErrorBody::new(StatusCode::UNAUTHORIZED, "Token has expired").with_reason("expired");
        let json: serde_json::Value = serde_json::from_slice(&body.to_json_bytes()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "Unauthorized", "message": "Token has expired", "reason": "expired"})
        );
    }
}
