//! auth-svc's one error type and its mapping to the contract's responses.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use platform::ErrorBody;
use platform::http::service_unavailable;
use platform::keyring::Rejection;
use platform::metrics::Unavailable;

use crate::throttle::Throttled;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// Unknown user and wrong password: one variant, so one status and one body.
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    InvalidToken(Rejection),
    #[error("Username or email already exists")]
    Conflict,
    /// No keyring loaded yet, or a refresh needed to decide did not complete in time.
    #[error("Authentication keys are temporarily unavailable, retry later")]
    KeysUnavailable,
    /// All hashing slots stayed busy for the whole queue timeout.
    #[error("Too many concurrent logins, retry shortly")]
    Busy,
    /// A login or registration limit is used up: 429 with `Retry-After`.
    #[error("{}", .0.message())]
    Throttled(Throttled),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, self.to_string()),
            Self::InvalidToken(r) => {
                let body = ErrorBody::new(StatusCode::UNAUTHORIZED, r.to_string()).with_reason(r.reason());
                let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::Conflict => (StatusCode::CONFLICT, self.to_string()),
            Self::Busy => return service_unavailable(Unavailable::Hashing, &self.to_string()),
            Self::KeysUnavailable => return service_unavailable(Unavailable::Keyring, &self.to_string()),
            Self::Throttled(t) => {
                let mut response = ErrorBody::response(StatusCode::TOO_MANY_REQUESTS, t.message());
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs));
                return response;
            }
            Self::Database(e) => {
                if platform::db::is_unavailable(e) {
                    tracing::warn!(error = %e, "database unavailable");
                    return service_unavailable(Unavailable::Database, "Database temporarily unavailable, retry later");
                }
                // Constraint violations are the client's doing: map them here, in one place.
                if let sqlx::Error::Database(db) = e {
                    match db.code().as_deref() {
                        Some("23505") => return Self::Conflict.into_response(),
                        Some("23514" | "22001") => {
                            return ErrorBody::response(StatusCode::BAD_REQUEST, "A field is invalid or too long");
                        }
                        _ => {}
                    }
                }
                tracing::error!(error = %e, "database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::default_message(StatusCode::INTERNAL_SERVER_ERROR).to_owned(),
                )
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::default_message(StatusCode::INTERNAL_SERVER_ERROR).to_owned(),
                )
            }
        };
        ErrorBody::response(status, message)
    }
}
