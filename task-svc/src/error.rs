//! task-svc's one error type and its mapping to the contract's responses.
//!
//! Database errors are classified where the query runs (the shared
//! [`platform::db::ConstraintExt::on_constraint`]): a query maps the constraints it can violate
//! by name to client errors. Whatever is left is [`ApiError::Database`]: 503 when the database
//! is unavailable, else 500, with the whole cause chain in the log and none of it in the
//! response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use platform::ErrorBody;
use platform::db::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The message is shown to the client.
    #[error("{0}")]
    BadRequest(String),
    /// No valid identity header: the request did not come through the gateway. Fail closed.
    /// 401, reason `no_identity`.
    #[error("No authenticated identity")]
    Unauthenticated,
    /// The identity's user no longer exists (its token outlived the account): a write for it
    /// hit the `tasks.user_id` foreign key. 401, reason `unknown_user`.
    #[error("The token's user no longer exists")]
    UnknownUser,
    #[error("You do not have permission to access this resource")]
    Forbidden,
    /// The task id as the client sent it (shortened).
    #[error("Task with id {0} not found")]
    NotFound(String),
    /// A query failed for a reason that is not the client's; it names the query in the log.
    #[error(transparent)]
    Database(#[from] QueryError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Database(e) => return e.into_response(),
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::UnknownUser => {
                let reason = if matches!(self, Self::UnknownUser) { "unknown_user" } else { "no_identity" };
                let body = ErrorBody::new(StatusCode::UNAUTHORIZED, self.to_string()).with_reason(reason);
                let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
        };
        ErrorBody::response(status, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::db::{ConstraintExt, QueryResultExt};
    use std::error::Error as _;

    #[test]
    fn the_database_cause_stays_in_the_chain_and_out_of_the_response() {
        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let err: ApiError = err.query("tasks: insert").unwrap_err().into();
        assert!(matches!(err.source(), Some(s) if s.to_string().contains("no rows")), "{err:?}");
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.starts_with("query \"tasks: insert\" failed: ") && chain.contains("no rows"), "{chain}");

        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let response = ApiError::from(err.query("tasks: insert").unwrap_err()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn on_constraint_leaves_other_errors_alone() {
        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let mapped = err.query("q").on_constraint(|_| Some(ApiError::Unauthenticated));
        assert!(matches!(mapped, Err(ApiError::Database(QueryError { query: "q", .. }))));
    }
}
