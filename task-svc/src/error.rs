//! task-svc's one error type and its mapping to the contract's responses.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use platform::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// No valid identity header: the request did not come through the gateway. Fail closed.
    #[error("No authenticated identity")]
    Unauthenticated,
    #[error("You do not have permission to access this resource")]
    Forbidden,
    #[error("Task with id {0} not found")]
    NotFound(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => {
                let mut response = ErrorBody::response(StatusCode::UNAUTHORIZED, self.to_string());
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Database(e) => return database_error(e),
        };
        ErrorBody::response(status, self.to_string())
    }
}

/// Constraint violations are the client's doing and map to client errors here, in one place;
/// an unreachable database is 503; anything else is logged and becomes a generic 500.
fn database_error(e: &sqlx::Error) -> Response {
    if platform::db::is_unavailable(e) {
        tracing::warn!(error = %e, "database unavailable");
        return platform::http::service_unavailable(
            platform::metrics::Unavailable::Database,
            "Database temporarily unavailable, retry later",
        );
    }
    if let sqlx::Error::Database(db) = e {
        match db.code().as_deref() {
            // The identity names a user that no longer exists.
            Some("23503") => return ApiError::Unauthenticated.into_response(),
            Some("23514" | "22001" | "22007" | "22008") => {
                return ErrorBody::response(StatusCode::BAD_REQUEST, "A field is invalid or out of range");
            }
            _ => {}
        }
    }
    tracing::error!(error = %e, "database error");
    ErrorBody::response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorBody::default_message(StatusCode::INTERNAL_SERVER_ERROR),
    )
}
