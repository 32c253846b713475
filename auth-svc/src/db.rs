//! auth-svc's queries. Each takes an executor, so it works on the pool or in a transaction.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

#[derive(Debug, sqlx::FromRow)]
pub struct NewUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
}

pub async fn insert_user(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
) -> Result<NewUser, sqlx::Error> {
    sqlx::query_as::<_, NewUser>(
        "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3)
         RETURNING id, username, email, created_at",
    )
    .bind(username)
    .bind(email)
    .bind(password_hash)
    .fetch_one(db)
    .await
}

/// The account whose username equals `username` regardless of case (through the unique index
/// on `lower(username)`).
pub async fn credentials_by_username(
    db: impl PgExecutor<'_>,
    username: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as::<_, Credentials>(
        "SELECT id, username, email, password_hash FROM users WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(db)
    .await
}

/// Whether an account already has this username or this email (both regardless of case): the
/// cheap check registration makes before it hashes. The unique indexes still decide races.
pub async fn username_or_email_taken(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($2))",
    )
    .bind(username)
    .bind(email)
    .fetch_one(db)
    .await
}
