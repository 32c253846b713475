//! Revocations in PostgreSQL: logout revokes one token (its `jti`, until its `exp`), logout-all
//! every token of a user issued before a cut-off, revoking an API key every token naming its
//! `client_id` (the entry is written by `api_key::store::revoke`). See the migration
//! `20261129000020_revocations.sql` for the ordering guarantee of `seq`.

use chrono::{DateTime, Utc};
use platform::db::{ConstraintExt, QueryError, QueryResultExt};
use platform::revocation::{RETAIN_AFTER_EXP_SECS, Revocation, RevocationPage};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use crate::error::ApiError;

/// Key of the transaction-level advisory lock that serialises writers, so `seq` order is
/// commit order (readers never skip an entry). Arbitrary, fixed: "revocations" in ASCII.
const WRITER_LOCK: i64 = 0x7265_766f_6361_7469;

/// The database enum `revocation_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "revocation_kind", rename_all = "snake_case")]
pub enum RevocationKind {
    Token,
    User,
    ApiKey,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    seq: i64,
    kind: RevocationKind,
    user_id: i64,
    jti: Option<String>,
    issued_before: Option<i64>,
    client_id: Option<String>,
    expires_at: DateTime<Utc>,
}

impl Row {
    fn into_revocation(self) -> Option<Revocation> {
        let exp = self.expires_at.timestamp();
        match self.kind {
            RevocationKind::Token => {
                Some(Revocation::Token { seq: self.seq, user_id: self.user_id, jti: self.jti?, exp })
            }
            RevocationKind::User => {
                Some(Revocation::User { seq: self.seq, user_id: self.user_id, issued_before: self.issued_before?, exp })
            }
            RevocationKind::ApiKey => {
                Some(Revocation::ApiKey { seq: self.seq, user_id: self.user_id, client_id: self.client_id?, exp })
            }
        }
    }
}

/// A transaction holding the writers' lock ([`WRITER_LOCK`]): every write to the log runs in
/// one, so `seq` order is commit order.
pub async fn begin_writing(pool: &PgPool) -> Result<Transaction<'static, Postgres>, QueryError> {
    let mut tx = pool.begin().await.query("revocations: begin")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await
        .query("revocations: writer lock")?;
    Ok(tx)
}

/// Revokes the token `jti` of `user_id` until `exp` (unix seconds). Idempotent. Errors:
/// [`ApiError::InvalidField`] for a `jti` the table cannot hold (empty, over 128 characters:
/// CHECK `revocations_shape`), which a token we issued never has.
pub async fn revoke_token(pool: &PgPool, user_id: i64, jti: &str, exp: i64) -> Result<(), ApiError> {
    let mut tx = begin_writing(pool).await?;
    sqlx::query(
        "INSERT INTO revocations (kind, user_id, jti, expires_at)
         VALUES ('token', $1, $2, to_timestamp($3))
         ON CONFLICT (jti) WHERE kind = 'token' DO NOTHING",
    )
    .bind(user_id)
    .bind(jti)
    .bind(exp as f64)
    .execute(&mut *tx)
    .await
    .query("revocations: revoke token")
    .on_constraint(|constraint| (constraint == "revocations_shape").then_some(ApiError::InvalidField))?;
    Ok(tx.commit().await.query("revocations: commit")?)
}

/// Revokes every token of `user_id` with `iat < issued_before` (unix seconds); the entry lives
/// until `expires_at`, when the last such token has expired.
pub async fn revoke_user_tokens(
    pool: &PgPool,
    user_id: i64,
    issued_before: i64,
    expires_at: i64,
) -> Result<(), ApiError> {
    let mut tx = begin_writing(pool).await?;
    sqlx::query(
        "INSERT INTO revocations (kind, user_id, issued_before, expires_at)
         VALUES ('user', $1, $2, to_timestamp($3))",
    )
    .bind(user_id)
    .bind(issued_before)
    .bind(expires_at as f64)
    .execute(&mut *tx)
    .await
    .query("revocations: revoke user tokens")?;
    Ok(tx.commit().await.query("revocations: commit")?)
}

/// Appends the `api_key` entry of `client_id` (a key of `user_id`), live until `expires_at`
/// (unix seconds), in `tx`, a transaction of [`begin_writing`].
pub async fn append_api_key(
    tx: &mut Transaction<'static, Postgres>,
    user_id: i64,
    client_id: &str,
    expires_at: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO revocations (kind, user_id, client_id, expires_at)
         VALUES ('api_key', $1, $2, to_timestamp($3))",
    )
    .bind(user_id)
    .bind(client_id)
    .bind(expires_at as f64)
    .execute(&mut **tx)
    .await
    .query("revocations: revoke api key")
    .on_constraint(|constraint| (constraint == "revocations_shape").then_some(ApiError::InvalidField))?;
    Ok(())
}

/// Whether a token (`jti`, `user_id`, `iat`, and the `client_id` of a token from an API key)
/// is revoked. A `client_id` whose key is revoked, or no longer exists, is revoked: the key's
/// row outlives its feed entry, so this check needs no entry.
#[tracing::instrument(name = "SELECT revocations", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "revocations"))]
pub async fn is_revoked(
    db: impl PgExecutor<'_>,
    jti: &str,
    user_id: i64,
    iat: i64,
    client_id: Option<&str>,
) -> Result<bool, ApiError> {
    let revoked = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'token' AND jti = $1)
             OR EXISTS (SELECT 1 FROM revocations WHERE kind = 'user' AND user_id = $2 AND issued_before > $3)
             OR ($4::text IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM api_keys WHERE client_id = $4 AND revoked_at IS NULL))",
    )
    .bind(jti)
    .bind(user_id)
    .bind(iat)
    .bind(client_id)
    .fetch_one(db)
    .await
    .query("revocations: is revoked")?;
    Ok(revoked)
}

/// The latest logout-all cut-off of `user_id` (unix seconds), if any is live.
#[tracing::instrument(name = "SELECT revocations", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "revocations"))]
pub async fn user_cutoff(db: impl PgExecutor<'_>, user_id: i64) -> Result<Option<i64>, ApiError> {
    let cutoff = sqlx::query_scalar(
        "SELECT max(issued_before) FROM revocations WHERE kind = 'user' AND user_id = $1 AND expires_at > now()",
    )
    .bind(user_id)
    .fetch_one(db)
    .await
    .query("revocations: user cut-off")?;
    Ok(cutoff)
}

/// Live entries with `seq > after`, by `seq`, at most `limit`. Live: `expires_at` less than
/// [`RETAIN_AFTER_EXP_SECS`] ago (a token is accepted until `exp + leeway`).
pub async fn page(db: &PgPool, after: i64, limit: u32) -> Result<RevocationPage, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, kind, user_id, jti, issued_before, client_id, expires_at
         FROM revocations WHERE seq > $1 AND expires_at > now() - make_interval(secs => $3)
         ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .bind(RETAIN_AFTER_EXP_SECS as f64)
    .fetch_all(db)
    .await
    .query("revocations: page")?;
    let latest: i64 =
        sqlx::query_scalar("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('revocations', 'seq')), 0)")
            .fetch_one(db)
            .await
            .query("revocations: latest seq")?;
    let next_cursor = rows.last().map_or(after, |r| r.seq);
    let revocations = rows.into_iter().filter_map(Row::into_revocation).collect();
    Ok(RevocationPage { revocations, next_cursor, latest })
}

/// Deletes entries that can match no accepted token: `expires_at` at least
/// [`RETAIN_AFTER_EXP_SECS`] ago. Returns how many.
pub async fn prune(db: impl PgExecutor<'_>) -> Result<u64, QueryError> {
    Ok(sqlx::query("DELETE FROM revocations WHERE expires_at <= now() - make_interval(secs => $1)")
        .bind(RETAIN_AFTER_EXP_SECS as f64)
        .execute(db)
        .await
        .query("revocations: prune")?
        .rows_affected())
}
