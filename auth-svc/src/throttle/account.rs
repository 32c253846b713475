//! The per-account limit: failed logins per normalised username in PostgreSQL's
//! `login_failures` table, so every auth-svc task counts against the same limit.
//!
//! An attempt is counted when it starts, in the same statement that decides whether it may go
//! on (one `INSERT ... ON CONFLICT DO UPDATE`, atomic per row): concurrent guesses from any
//! number of tasks and sources cannot get more than `limit` hashes per window. A success deletes
//! the row; an attempt that ended before a password was checked (no hashing slot, database
//! trouble) gives its count back. The window is fixed: it starts with the first counted attempt
//! and, once over, the next attempt starts a new one, so there is no permanent lockout.

use std::time::Duration;

use platform::db::{QueryError, QueryResultExt};
use sqlx::PgExecutor;

use crate::user::UsernameKey;

/// Whether a counted attempt may go on to check the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// `limit` attempts have been counted in the current window; it ends after `retry_after`.
    Refused {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct AccountLimiter {
    limit: u32,
    window: Duration,
}

/// Rows deleted per statement by [`AccountLimiter::delete_expired`], so one statement stays
/// well inside the statement timeout however many rows a flood left.
const DELETE_BATCH: i64 = 5_000;

impl AccountLimiter {
    /// `limit` attempts (1..=1000000) per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one attempt for `key` (the username as typed, compared as usernames are: the
    /// account's own key when it exists, and the same key whether or not it does) and says
    /// whether it may go on.
    pub async fn begin(&self, db: impl PgExecutor<'_>, key: &UsernameKey) -> Result<Admission, QueryError> {
        // `f.*` in SET is the stored row; RETURNING sees the new one. The count stops at limit+1
        // so refused attempts do not grow it further.
        let (failures, remaining_secs): (i32, f64) = sqlx::query_as(
            "INSERT INTO login_failures AS f (username, failures, window_start) VALUES ($1, 1, now())
             ON CONFLICT (username) DO UPDATE SET
                 failures = CASE WHEN f.window_start + make_interval(secs => $2) <= now() THEN 1
                                 ELSE least(f.failures + 1, $3 + 1) END,
                 window_start = CASE WHEN f.window_start + make_interval(secs => $2) <= now() THEN now()
                                     ELSE f.window_start END
             RETURNING failures,
                       extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8",
        )
        .bind(key.as_str())
        .bind(self.window.as_secs_f64())
        .bind(i32::try_from(self.limit).unwrap_or(i32::MAX - 1))
        .fetch_one(db)
        .await
        .query("login_failures: count attempt")?;
        if u32::try_from(failures).unwrap_or(0) > self.limit {
            let retry_after = Duration::try_from_secs_f64(remaining_secs.max(0.0)).unwrap_or(self.window);
            return Ok(Admission::Refused { retry_after });
        }
        Ok(Admission::Admitted)
    }

    /// A successful login: the account's count starts from zero.
    pub async fn reset(&self, db: impl PgExecutor<'_>, key: &UsernameKey) -> Result<(), QueryError> {
        sqlx::query("DELETE FROM login_failures WHERE username = $1")
            .bind(key.as_str())
            .execute(db)
            .await
            .query("login_failures: reset")?;
        Ok(())
    }

    /// An admitted attempt that never checked a password: its count is given back.
    pub async fn refund(&self, db: impl PgExecutor<'_>, key: &UsernameKey) -> Result<(), QueryError> {
        sqlx::query("UPDATE login_failures SET failures = failures - 1 WHERE username = $1 AND failures > 0")
            .bind(key.as_str())
            .execute(db)
            .await
            .query("login_failures: refund")?;
        Ok(())
    }

    /// Deletes the rows of windows that are over (they would be reset by the next attempt
    /// anyway), in batches; returns how many. Bounds the table to the names tried within one
    /// window.
    pub async fn delete_expired(&self, db: &sqlx::PgPool) -> Result<u64, QueryError> {
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM login_failures WHERE username IN (
                     SELECT username FROM login_failures
                     WHERE window_start <= now() - make_interval(secs => $1)
                     LIMIT $2)",
            )
            .bind(self.window.as_secs_f64())
            .bind(DELETE_BATCH)
            .execute(db)
            .await
            .query("login_failures: delete expired")?
            .rows_affected();
            deleted += n;
            if n < DELETE_BATCH as u64 {
                return Ok(deleted);
            }
        }
    }
}
