//! The token endpoint's errors (RFC 6749 §5.2) and how they relate to the contract's body.
//!
//! An OAuth 2.0 client library reads `error` (the §5.2 code) and `error_description`; a client
//! of this API reads `message` and the machine-readable `reason`. The body carries all four, so
//! both kinds of client understand it:
//!
//! ```json
//! {"error": "invalid_client", "error_description": "Client authentication failed",
//!  "message": "Client authentication failed", "reason": "invalid_client"}
//! ```
//!
//! This is the one place where `error` is not the status's reason phrase: §5.2 defines the
//! field. Failures outside §5.2 (429 from the throttle, 503, 500, 413) keep the contract's body.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The one description of every client authentication failure (unknown client, wrong secret,
/// revoked or expired key, no or unsupported authentication): a caller learns nothing more.
pub const CLIENT_AUTH_FAILED: &str = "Client authentication failed";

/// `WWW-Authenticate` of a 401 `invalid_client` (RFC 6749 §5.2, RFC 7617).
pub const BASIC_CHALLENGE: &str = r#"Basic realm="task-mgmt""#;

/// Why a token request failed (RFC 6749 §5.2), or a failure of the service itself.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// 400 `invalid_request`: a missing or repeated parameter, a body that is not a form, two
    /// client authentication methods at once. The text says which.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_client` with `WWW-Authenticate: Basic realm="task-mgmt"`: one answer for
    /// every client authentication failure ([`CLIENT_AUTH_FAILED`]).
    #[error("{CLIENT_AUTH_FAILED}")]
    InvalidClient,
    /// 400 `unsupported_grant_type`: a `grant_type` other than `client_credentials`.
    #[error("grant_type must be client_credentials")]
    UnsupportedGrantType,
    /// 400 `invalid_scope`: an unknown scope, or one the key does not have.
    #[error("{0}")]
    InvalidScope(String),
    /// Not the client's mistake under §5.2 (throttled, unavailable, internal): the contract's
    /// response of [`ApiError`].
    #[error(transparent)]
    Service(#[from] ApiError),
}

/// The body of a §5.2 error (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The RFC 6749 §5.2 error code, e.g. `invalid_client`.
    #[schema(example = "invalid_client")]
    pub error: String,
    pub error_description: String,
    /// The same text as `error_description` (the contract's field).
    pub message: String,
    /// The same code as `error` (the contract's machine-readable field).
    pub reason: String,
}

impl OAuthError {
    /// The §5.2 code and status, `None` for [`OAuthError::Service`].
    pub fn code(&self) -> Option<(&'static str, StatusCode)> {
        match self {
            Self::InvalidRequest(_) => Some(("invalid_request", StatusCode::BAD_REQUEST)),
            Self::InvalidClient => Some(("invalid_client", StatusCode::UNAUTHORIZED)),
            Self::UnsupportedGrantType => Some(("unsupported_grant_type", StatusCode::BAD_REQUEST)),
            Self::InvalidScope(_) => Some(("invalid_scope", StatusCode::BAD_REQUEST)),
            Self::Service(_) => None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = match self.code() {
            None => match self {
                Self::Service(e) => e.into_response(),
                _ => unreachable!("every other variant has a code"),
            },
            Some((code, status)) => {
                let description = self.to_string();
                let body = OAuthErrorBody {
                    error: code.to_owned(),
                    error_description: description.clone(),
                    message: description,
                    reason: code.to_owned(),
                };
                let mut response = (status, Json(body)).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
                }
                response
            }
        };
        no_store(&mut response);
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` as response parts, for every response that
/// carries a credential (a token from login, an API key's secret): RFC 6749 §5.1 asks it of
/// token responses, and the same reasoning holds for the others.
pub const NO_STORE: [(header::HeaderName, &str); 2] =
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): no cache keeps a token
/// response.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_error_has_its_code_status_and_both_kinds_of_field() {
        let cases = [
            (OAuthError::InvalidRequest("grant_type is required".into()), "invalid_request", StatusCode::BAD_REQUEST),
            (OAuthError::InvalidClient, "invalid_client", StatusCode::UNAUTHORIZED),
            (OAuthError::UnsupportedGrantType, "unsupported_grant_type", StatusCode::BAD_REQUEST),
            (OAuthError::InvalidScope("unknown scope".into()), "invalid_scope", StatusCode::BAD_REQUEST),
        ];
        for (error, code, status) in cases {
            let text = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(challenge.as_deref(), (status == StatusCode::UNAUTHORIZED).then_some(BASIC_CHALLENGE));
            let json = body(response).await;
            assert_eq!(json["error"], code);
            assert_eq!(json["reason"], code);
            assert_eq!(json["error_description"], text.as_str());
            assert_eq!(json["message"], text.as_str());
        }
        let response = OAuthError::Service(ApiError::KeysUnavailable).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await["error"], "Service Unavailable", "the contract's body");
    }
}
