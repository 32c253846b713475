//! A failed query, and what a service makes of it. Both services classify a database error
//! where the query runs: the constraints a statement can violate are mapped, by the names the
//! migrations give them, to the client errors they mean ([`ConstraintExt::on_constraint`]).
//! Whatever is left answers for itself ([`QueryError`]'s `IntoResponse`): 503 with
//! `Retry-After` when the database is unavailable ([`is_unavailable`]), else 500, with the whole
//! cause chain in the log and none of it in the response.
//!
//! ```ignore
//! let user = sqlx::query_as("INSERT INTO users ... RETURNING ...")
//!     .fetch_one(db)
//!     .await
//!     .query("users: insert")
//!     .on_constraint(|name| match name {
//!         "users_username_lower_key" | "users_email_lower_key" => Some(ApiError::Conflict),
//!         _ => None,
//!     })?;
//! ```

use axum::response::{IntoResponse, Response};

use crate::metrics::Unavailable;

/// A query that failed, named so the log says which one (`query "users: insert" failed:
/// <sqlx error>: <cause>...`). The sqlx error is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("query {query:?} failed")]
pub struct QueryError {
    /// What the query does, e.g. `"tasks: insert"`.
    pub query: &'static str,
    #[source]
    pub source: sqlx::Error,
}

impl QueryError {
    /// The name of the constraint the statement violated (a unique index, foreign key, CHECK or
    /// exclusion constraint: PostgreSQL's `constraint_name` field, SQLSTATE class 23), if any.
    pub fn constraint(&self) -> Option<&str> {
        match &self.source {
            sqlx::Error::Database(db) => db.constraint(),
            _ => None,
        }
    }

    /// Whether the database was unavailable ([`is_unavailable`]): the client may retry.
    pub fn is_unavailable(&self) -> bool {
        is_unavailable(&self.source)
    }
}

/// True when the error means "the database is unavailable right now" (503), as opposed to a
/// bug or a constraint violation.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01..03: shutdown / cannot connect now;
            // 57014: statement timeout; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "57014" || code == "53300"
        }),
        _ => false,
    }
}

/// Naming a query's error where the query runs.
pub trait QueryResultExt<T> {
    /// The error, if any, as a [`QueryError`] named `query`.
    fn query(self, query: &'static str) -> Result<T, QueryError>;
}

impl<T> QueryResultExt<T> for Result<T, sqlx::Error> {
    fn query(self, query: &'static str) -> Result<T, QueryError> {
        self.map_err(|source| QueryError { query, source })
    }
}

/// Mapping a constraint violation, by the constraint's name, to a client error.
pub trait ConstraintExt<T> {
    /// A violation of a constraint that `client_error` knows (it returns `Some` for the name)
    /// becomes that error; every other failure, violations of other constraints included, is
    /// the [`QueryError`] converted into `E`.
    fn on_constraint<E: From<QueryError>>(self, client_error: impl FnOnce(&str) -> Option<E>) -> Result<T, E>;
}

impl<T> ConstraintExt<T> for Result<T, QueryError> {
    fn on_constraint<E: From<QueryError>>(self, client_error: impl FnOnce(&str) -> Option<E>) -> Result<T, E> {
        self.map_err(|e| e.constraint().and_then(client_error).unwrap_or_else(|| E::from(e)))
    }
}

/// 503 (`Retry-After: 1`, counted as `http_unavailable_responses_total{cause="database"}`) when
/// the database is unavailable, else 500 with the default message. Either way the log gets the
/// whole chain and the response none of it.
impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        if self.is_unavailable() {
            tracing::warn!(error = %format!("{:#}", anyhow::Error::new(self)), "database unavailable");
            return crate::http::service_unavailable(
                Unavailable::Database,
                "Database temporarily unavailable, retry later",
            );
        }
        crate::http::internal_error("database error", anyhow::Error::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    enum ServiceError {
        #[error("taken")]
        Taken,
        #[error(transparent)]
        Database(#[from] QueryError),
    }

    #[test]
    fn the_cause_stays_in_the_chain_and_out_of_the_response() {
        let err = Err::<(), _>(sqlx::Error::RowNotFound).query("tasks: insert").unwrap_err();
        assert!(matches!(err.source(), Some(s) if s.to_string().contains("no rows")), "{err:?}");
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.starts_with("query \"tasks: insert\" failed: ") && chain.contains("no rows"), "{chain}");

        let response = Err::<(), _>(sqlx::Error::RowNotFound).query("q").unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = Err::<(), _>(sqlx::Error::PoolTimedOut).query("q").unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(http::header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(response.extensions().get::<Unavailable>(), Some(&Unavailable::Database));
    }

    #[test]
    fn errors_without_a_constraint_are_left_alone() {
        let mut asked = false;
        let mapped: Result<(), ServiceError> = Err(sqlx::Error::RowNotFound).query("q").on_constraint(|_| {
            asked = true;
            Some(ServiceError::Taken)
        });
        assert!(matches!(mapped, Err(ServiceError::Database(QueryError { query: "q", .. }))), "{mapped:?}");
        assert!(!asked, "no constraint, nothing to ask about");
    }
}
