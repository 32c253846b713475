//! task-svc's one error type and its mapping to the contract's responses.
//!
//! Database errors are classified where the query runs: a query maps the constraints it can
//! violate by name ([`QueryResultExt::on_constraint`]) to client errors. Whatever is left is
//! [`ApiError::Database`]: 503 when the database is unavailable, else 500, with the whole cause
//! chain in the log and none of it in the response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use platform::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The message is shown to the client.
    #[error("{0}")]
    BadRequest(String),
    /// No valid identity header: the request did not come through the gateway, or its user no
    /// longer exists. Fail closed.
    #[error("No authenticated identity")]
    Unauthenticated,
    #[error("You do not have permission to access this resource")]
    Forbidden,
    /// The task id as the client sent it (shortened).
    #[error("Task with id {0} not found")]
    NotFound(String),
    /// A query failed for a reason that is not the client's. `query` names it in the log.
    #[error("query {query:?} failed")]
    Database {
        query: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Classifying a query's error where the query runs.
pub trait QueryResultExt<T> {
    /// Names the query, so an error that reaches the log says which one failed.
    fn query(self, query: &'static str) -> Result<T, ApiError>;
}

impl<T> QueryResultExt<T> for Result<T, sqlx::Error> {
    fn query(self, query: &'static str) -> Result<T, ApiError> {
        self.map_err(|source| ApiError::Database { query, source })
    }
}

/// Mapping a constraint violation, by the constraint's name, to a client error.
pub trait ConstraintExt<T> {
    /// A violation of the constraint `name` becomes `f()`; every other error is unchanged.
    fn on_constraint(self, name: &str, f: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> ConstraintExt<T> for Result<T, ApiError> {
    fn on_constraint(self, name: &str, f: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            ApiError::Database { source: sqlx::Error::Database(db), .. } if db.constraint() == Some(name) => f(),
            other => other,
        })
    }
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
            Self::Database { source, .. } => return database_error(platform::db::is_unavailable(source), self),
        };
        ErrorBody::response(status, self.to_string())
    }
}

/// 503 with `Retry-After` when the database is unavailable (the client may retry), else 500.
/// The log gets the whole chain (`query "..." failed: <sqlx error>: <cause>...`).
fn database_error(unavailable: bool, error: ApiError) -> Response {
    let chain = format!("{:#}", anyhow::Error::new(error));
    if unavailable {
        tracing::warn!(error = %chain, "database unavailable");
        return platform::http::service_unavailable(
            platform::metrics::Unavailable::Database,
            "Database temporarily unavailable, retry later",
        );
    }
    tracing::error!(error = %chain, "database error");
    ErrorBody::response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorBody::default_message(StatusCode::INTERNAL_SERVER_ERROR),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_database_cause_stays_in_the_chain_and_out_of_the_response() {
        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let err = err.query("tasks: insert").unwrap_err();
        assert!(matches!(err.source(), Some(s) if s.to_string().contains("no rows")), "{err:?}");
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.starts_with("query \"tasks: insert\" failed: ") && chain.contains("no rows"), "{chain}");

        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let response = err.query("tasks: insert").unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn on_constraint_leaves_other_errors_alone() {
        let err: Result<(), _> = Err(sqlx::Error::RowNotFound);
        let mapped = err.query("q").on_constraint("tasks_user_id_fkey", || ApiError::Unauthenticated);
        assert!(matches!(mapped, Err(ApiError::Database { query: "q", .. })));
        let err: Result<(), ApiError> = Err(ApiError::Forbidden);
        assert!(matches!(err.on_constraint("x", || ApiError::Unauthenticated), Err(ApiError::Forbidden)));
    }
}
