//! The queries on `api_keys` (migration `20261203000011_api_keys.sql`). Ids travel as text and
//! are cast in SQL (`$1::uuid`, `id::text`): the key ids are validated as UUIDs before a query.

use chrono::{DateTime, Utc};
use platform::db::{ConstraintExt, QueryResultExt};
use platform::keyring::{Rejection, ScopeSet};
use sqlx::PgPool;

use super::{ApiKeyView, MAX_LIVE_KEYS_PER_USER, NewApiKey, NewCredentials, SecretHash, scope_list};
use crate::error::ApiError;
use crate::revocation;

/// Revoked and expired keys are deleted this many days after their revocation or expiry, so
/// neither the table nor an owner's list grows without bound (a token naming a key that no
/// longer exists is refused like a revoked one, see [`revocation::is_revoked`]; by then every
/// token of the key has expired anyway).
pub const KEEP_REVOKED_DAYS: i64 = 30;

#[derive(sqlx::FromRow)]
struct ViewRow {
    id: String,
    name: String,
    client_id: String,
    scopes: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<ViewRow> for ApiKeyView {
    fn from(r: ViewRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            client_id: r.client_id,
            scopes: scope_list(ScopeSet::from_claim(Some(&r.scopes))),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        }
    }
}

const VIEW_COLUMNS: &str = "id::text AS id, name, client_id, scopes, created_at, expires_at, last_used_at";

/// The constraints on `api_keys` and the client error each one means (the rules are checked
/// before the query; these fire only for a writer that skipped them).
fn api_keys_constraint(constraint: &str) -> Option<ApiError> {
    constraint.starts_with("api_keys_").then_some(ApiError::InvalidField)
}

/// Stores a new key of `user_id` unless the account already holds [`MAX_LIVE_KEYS_PER_USER`]
/// live keys (neither revoked nor expired). Errors: [`ApiError::TooManyApiKeys`] (409);
/// [`ApiError::InvalidToken`] (`revoked`) when the account no longer exists.
pub async fn create(
    pool: &PgPool,
    user_id: i64,
    key: &NewApiKey,
    credentials: &NewCredentials,
) -> Result<ApiKeyView, ApiError> {
    let mut tx = pool.begin().await.query("api_keys: begin")?;
    // One creation per account at a time, so two concurrent requests cannot both pass the limit.
    // NO KEY UPDATE leaves the row's KEY SHARE lock free for foreign key checks (task inserts).
    let account: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .query("api_keys: lock account")?;
    if account.is_none() {
        return Err(ApiError::InvalidToken(Rejection::Revoked));
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys
         WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await
    .query("api_keys: count live")?;
    if live >= MAX_LIVE_KEYS_PER_USER {
        return Err(ApiError::TooManyApiKeys);
    }
    let row: ViewRow = sqlx::query_as(&format!(
        "INSERT INTO api_keys (user_id, name, client_id, secret_hash, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {VIEW_COLUMNS}"
    ))
    .bind(user_id)
    .bind(&key.name)
    .bind(&credentials.client_id)
    .bind(&credentials.secret_hash.0[..])
    .bind(key.scopes.to_string())
    .bind(key.expires_at)
    .fetch_one(&mut *tx)
    .await
    .query("api_keys: insert")
    .on_constraint(api_keys_constraint)?;
    tx.commit().await.query("api_keys: commit")?;
    Ok(row.into())
}

/// The keys of `user_id` that are not revoked (expired ones included, so the owner sees them
/// and can delete them), newest first.
pub async fn list(pool: &PgPool, user_id: i64) -> Result<Vec<ApiKeyView>, ApiError> {
    let rows: Vec<ViewRow> = sqlx::query_as(&format!(
        "SELECT {VIEW_COLUMNS} FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL
         ORDER BY created_at DESC, id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
    .query("api_keys: list")?;
    Ok(rows.into_iter().map(ApiKeyView::from).collect())
}

/// Revokes the key `id` of `user_id` and appends its `api_key` entry (until `expires_at`, unix
/// seconds) to the revocation log, in one transaction under the log's writer lock: a key is
/// never revoked without its entry on the feed. Returns `false` when `user_id` has no live key
/// `id` (unknown, another user's, or already revoked): ownership is part of the statement.
pub async fn revoke(pool: &PgPool, user_id: i64, id: &uuid::Uuid, expires_at: i64) -> Result<bool, ApiError> {
    let mut tx = revocation::begin_writing(pool).await?;
    let client_id: Option<String> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now()
         WHERE id = $1::uuid AND user_id = $2 AND revoked_at IS NULL RETURNING client_id",
    )
    .bind(id.to_string())
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .query("api_keys: revoke")?;
    let Some(client_id) = client_id else {
        return Ok(false);
    };
    revocation::append_api_key(&mut tx, user_id, &client_id, expires_at).await?;
    tx.commit().await.query("api_keys: commit revocation")?;
    Ok(true)
}

/// What the client credentials grant needs of a key and its owner.
#[derive(sqlx::FromRow)]
pub struct KeyForExchange {
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub email: String,
    secret_hash: Vec<u8>,
    /// The stored `scopes` value.
    pub scopes: String,
    /// Neither revoked nor expired, by the database's clock.
    pub usable: bool,
    /// `last_used_at` is unset or at least a minute old: [`touch`] would write.
    pub touch_due: bool,
}

impl KeyForExchange {
    /// Whether `secret` is this key's secret (constant-time comparison of the hashes).
    pub fn secret_matches(&self, secret: &str) -> bool {
        SecretHash::from_stored(&self.secret_hash).is_some_and(|hash| hash.matches(secret))
    }

    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::from_claim(Some(&self.scopes))
    }
}

/// The key named `client_id` and its owner, whatever its state.
pub async fn for_exchange(pool: &PgPool, client_id: &str) -> Result<Option<KeyForExchange>, ApiError> {
    let key = sqlx::query_as(
        "SELECT k.id::text AS id, u.id AS user_id, u.username, u.email, k.secret_hash, k.scopes,
                (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS usable,
                (k.last_used_at IS NULL OR k.last_used_at <= now() - interval '1 minute') AS touch_due
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(pool)
    .await
    .query("api_keys: for exchange")?;
    Ok(key)
}

/// Records a successful exchange in `last_used_at`, at most once a minute per key (callers
/// skip it unless [`KeyForExchange::touch_due`]; the condition repeats it for concurrent ones).
pub async fn touch(pool: &PgPool, id: &str) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
         WHERE id = $1::uuid AND (last_used_at IS NULL OR last_used_at <= now() - interval '1 minute')",
    )
    .bind(id)
    .execute(pool)
    .await
    .query("api_keys: touch")?;
    Ok(())
}

/// Deletes keys revoked or expired more than [`KEEP_REVOKED_DAYS`] ago; returns how many.
pub async fn prune_revoked(pool: &PgPool) -> Result<u64, platform::db::QueryError> {
    Ok(sqlx::query(
        "DELETE FROM api_keys
         WHERE revoked_at < now() - make_interval(days => $1) OR expires_at < now() - make_interval(days => $1)",
    )
    .bind(KEEP_REVOKED_DAYS as i32)
    .execute(pool)
    .await
    .query("api_keys: prune revoked")?
    .rows_affected())
}
