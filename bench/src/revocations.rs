//! Issue 9's revocation cost: a database holding many live revocations, for a gateway that
//! pulls them from its own auth-svc, so the same run can compare a gateway with none and one
//! with 100,000 (CPU per request, RSS) and show that a steady-state pull moves only what
//! changed.
//!
//! The rows go straight into `revocations` (migrations/20261129000020_revocations.sql) with
//! SQL, before any gateway starts, so the log's advisory lock (which orders concurrent
//! writers) is not needed.

use anyhow::Result;
use sqlx::PgPool;

/// Inserts `count` token revocations: random 32-hex-digit `jti`s (like auth-svc's), user ids
/// spread over `users` (they need not exist: revocations have no foreign key), all expiring a
/// day from now. Returns the number of rows inserted.
pub async fn seed(pool: &PgPool, count: u32, users: i64) -> Result<u64> {
    let inserted = sqlx::query(
        "INSERT INTO revocations (kind, user_id, jti, expires_at) \
         SELECT 'token', 1 + (g % $2::bigint), md5(random()::text || clock_timestamp()::text || g::text), \
                now() + interval '1 day' \
         FROM generate_series(1, $1::int) AS g",
    )
    .bind(i32::try_from(count)?)
    .bind(users.max(1))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted)
}
