//! Accounts the case-insensitive username migration renamed (table `username_conflicts`), and
//! the warning auth-svc logs at start while an operator has not resolved them.

use platform::db::{QueryError, QueryResultExt};
use sqlx::PgExecutor;

/// How many renamed account ids the start-up warning lists at most.
const LISTED_IDS: usize = 20;

/// Ids of the renamed accounts whose `resolved_at` is still NULL, in id order.
pub async fn unresolved(db: impl PgExecutor<'_>) -> Result<Vec<i64>, QueryError> {
    sqlx::query_scalar("SELECT user_id FROM username_conflicts WHERE resolved_at IS NULL ORDER BY user_id")
        .fetch_all(db)
        .await
        .query("username_conflicts: unresolved")
}

/// Logs a warning naming how many renamed accounts are unresolved and (up to 20 of) their ids;
/// never names or emails. Silent when there are none; a query failure is logged, not fatal.
pub async fn warn_if_unresolved(db: impl PgExecutor<'_>) {
    match unresolved(db).await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => tracing::warn!(
            renamed_accounts = ids.len(),
            user_ids = ?&ids[..ids.len().min(LISTED_IDS)],
            "accounts were renamed because their usernames differed from older ones only in case; \
             see table username_conflicts and set resolved_at once handled"
        ),
        Err(e) => tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not read username_conflicts"),
    }
}
