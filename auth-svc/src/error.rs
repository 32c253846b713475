//! auth-svc's one error type and its mapping to the contract's responses.
//!
//! The same model as task-svc's: input is validated once, where it is parsed (`user.rs`); a
//! query maps the constraints it can violate to client errors where it runs (the shared
//! [`platform::db::ConstraintExt::on_constraint`]); what is not the client's doing (a failed
//! query, hashing, signing) keeps its cause as the error's source, so the log gets the whole
//! chain and the response none of it. The throttle and the hashing pool have error types of
//! their own, converted here.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use platform::ErrorBody;
use platform::db::QueryError;
use platform::error_body::reason;
use platform::http::{internal_error, service_unavailable};
use platform::keyring::Rejection;
use platform::metrics::Unavailable;

use crate::password::HashError;
use crate::throttle::{ThrottleError, Throttled};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The message is shown to the client.
    #[error("{0}")]
    BadRequest(String),
    /// A value the database refused by a CHECK constraint. The rules are checked before the
    /// query, so this fires only for a writer that skipped them.
    #[error("A field is invalid or too long")]
    InvalidField,
    /// Unknown user and wrong password: one variant, so one status and one body.
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    InvalidToken(Rejection),
    #[error("Username or email already exists")]
    Conflict,
    /// A token from an API key at an endpoint that manages the account: 403 with
    /// `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750 §3.1) and `reason`
    /// `insufficient_scope`.
    #[error("This endpoint needs a login token; a token from an API key cannot manage the account")]
    LoginTokenRequired,
    /// The account already holds the most live API keys it may: 409, `reason` `api_key_limit`.
    #[error(
        "This account already has {} active API keys, the maximum; delete one first",
        crate::api_key::MAX_LIVE_KEYS_PER_USER
    )]
    TooManyApiKeys,
    /// An API key the caller does not own, or that does not exist (one answer for both).
    #[error("API key not found")]
    ApiKeyNotFound,
    /// No keyring loaded yet, or a refresh needed to decide did not complete in time.
    #[error("Authentication keys are temporarily unavailable, retry later")]
    KeysUnavailable,
    /// All hashing slots stayed busy for the whole queue timeout.
    #[error("Too many concurrent logins, retry shortly")]
    Busy,
    /// A login or registration limit is used up: 429 with `Retry-After`.
    #[error("{0}")]
    Throttled(Throttled),
    /// Hashing failed for a reason other than [`ApiError::Busy`].
    #[error("password hashing failed")]
    Hashing(#[source] HashError),
    #[error("could not sign the token")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// A query failed for a reason that is not the client's; it names the query in the log.
    #[error(transparent)]
    Database(#[from] QueryError),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        if e.is_busy() { Self::Busy } else { Self::Hashing(e) }
    }
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        Self::Throttled(t)
    }
}

impl From<ThrottleError> for ApiError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled(t) => Self::Throttled(t),
            ThrottleError::Database(e) => Self::Database(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Database(e) => return e.into_response(),
            Self::Hashing(_) | Self::Signing(_) => return internal_error("internal error", anyhow::Error::new(self)),
            Self::InvalidToken(rejection) => return invalid_token(rejection),
            Self::Throttled(throttled) => return too_many_requests(throttled),
            Self::Busy => return service_unavailable(Unavailable::Hashing, &self.to_string()),
            Self::KeysUnavailable => return service_unavailable(Unavailable::Keyring, &self.to_string()),
            Self::BadRequest(_) | Self::InvalidField => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::ApiKeyNotFound => StatusCode::NOT_FOUND,
            Self::LoginTokenRequired => return insufficient_scope(&self.to_string()),
            Self::TooManyApiKeys => {
                let body = ErrorBody::new(StatusCode::CONFLICT, self.to_string()).with_reason("api_key_limit");
                return (StatusCode::CONFLICT, axum::Json(body)).into_response();
            }
        };
        ErrorBody::response(status, self.to_string())
    }
}

/// 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3) and the machine-readable `reason`.
fn invalid_token(rejection: Rejection) -> Response {
    let body = ErrorBody::new(StatusCode::UNAUTHORIZED, rejection.to_string()).with_reason(rejection.reason());
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// 403 with `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750 §3.1) and `reason`
/// `insufficient_scope`.
fn insufficient_scope(message: &str) -> Response {
    let body = ErrorBody::new(StatusCode::FORBIDDEN, message).with_reason("insufficient_scope");
    let mut response = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            r#"Bearer error="insufficient_scope", error_description="a login token is required, not a token from an API key""#,
        ),
    );
    response
}

/// 429 with `Retry-After` in whole seconds (RFC 6585 §4, RFC 9110 §10.2.3).
fn too_many_requests(throttled: Throttled) -> Response {
    let body = ErrorBody::new(StatusCode::TOO_MANY_REQUESTS, throttled.to_string()).with_reason(reason::RATE_LIMITED);
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(throttled.retry_after_secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::pool::PoolError;
    use crate::throttle::Scope;
    use std::error::Error as _;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_variant_answers_with_its_status_and_the_contract_body() {
        let throttled = Throttled { scope: Scope::Account, retry_after_secs: 7 };
        let cases = [
            (ApiError::BadRequest("title".into()), StatusCode::BAD_REQUEST, "title"),
            (ApiError::InvalidField, StatusCode::BAD_REQUEST, "A field is invalid or too long"),
            (ApiError::InvalidCredentials, StatusCode::UNAUTHORIZED, "Invalid username or password"),
            (ApiError::Conflict, StatusCode::CONFLICT, "Username or email already exists"),
            (ApiError::ApiKeyNotFound, StatusCode::NOT_FOUND, "API key not found"),
            (
                ApiError::TooManyApiKeys,
                StatusCode::CONFLICT,
                "This account already has 20 active API keys, the maximum; delete one first",
            ),
            (
                ApiError::LoginTokenRequired,
                StatusCode::FORBIDDEN,
                "This endpoint needs a login token; a token from an API key cannot manage the account",
            ),
            (ApiError::Throttled(throttled), StatusCode::TOO_MANY_REQUESTS, &throttled.to_string()),
            (
                HashError::from(PoolError::Busy).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many concurrent logins, retry shortly",
            ),
            (
                HashError::from(PoolError::Stopped).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal error occurred",
            ),
        ];
        for (error, status, message) in cases {
            let response = error.into_response();
            assert_eq!(response.status(), status);
            let json = body(response).await;
            assert_eq!(json["message"], message, "{json}");
            assert_eq!(json["error"], status.canonical_reason().unwrap());
        }
        let response = ApiError::Throttled(throttled).into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "7");
        assert_eq!(body(response).await["reason"], "rate_limited", "the gateway's 429 reason");
        let response = ApiError::from(HashError::from(PoolError::Busy)).into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(response.extensions().get::<Unavailable>(), Some(&Unavailable::Hashing));
    }

    #[test]
    fn hashing_failures_keep_their_cause() {
        let err = ApiError::from(HashError::from(PoolError::JobLost));
        assert!(matches!(err, ApiError::Hashing(_)));
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.starts_with("password hashing failed: ") && chain.contains("without an answer"), "{chain}");
        let err = ApiError::from(HashError::from(PoolError::Busy));
        assert!(matches!(err, ApiError::Busy) && err.source().is_none());
    }
}
