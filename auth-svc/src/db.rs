//! auth-svc's queries on `users`. Each takes an executor, so it works on the pool or in a
//! transaction, takes the validated types of [`crate::user`], and maps the constraints it can
//! violate to client errors right here (the shared [`ConstraintExt::on_constraint`]).

use platform::db::{ConstraintExt, QueryResultExt};
use sqlx::PgExecutor;

use crate::error::ApiError;
use crate::user::{Email, LoginName, RegisteredUser, Username};

/// What login needs of an account.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// A PHC string (see `password::phc`).
    pub password_hash: String,
}

/// The constraints on `users` (migrations/) and the client error each one means.
fn users_constraint(constraint: &str) -> Option<ApiError> {
    match constraint {
        // Usernames are unique by their key (`user::UsernameKey`), emails regardless of case.
        "users_username_key_key" | "users_email_lower_key" => Some(ApiError::Conflict),
        // The same rules as `Username` and `Email`, checked first.
        "users_username_format" | "users_email_format" => Some(ApiError::InvalidField),
        _ => None,
    }
}

/// Creates an account. Errors: [`ApiError::Conflict`] when the username or the email is taken
/// (the unique indexes decide a race that [`username_or_email_taken`] did not see).
#[tracing::instrument(name = "INSERT users", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "users"))]
pub async fn insert_user(
    db: impl PgExecutor<'_>,
    username: &Username,
    email: &Email,
    password_hash: &str,
) -> Result<RegisteredUser, ApiError> {
    sqlx::query_as::<_, RegisteredUser>(
        "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3)
         RETURNING id, username, email, created_at",
    )
    .bind(username.as_str())
    .bind(email.as_str())
    .bind(password_hash)
    .fetch_one(db)
    .await
    .query("users: insert")
    .on_constraint(users_constraint)
}

/// The account whose username has the key of `username` (see [`crate::user::UsernameKey`]),
/// through the unique index on `users.username_key`.
#[tracing::instrument(name = "SELECT users", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn credentials_by_username(
    db: impl PgExecutor<'_>,
    username: &LoginName,
) -> Result<Option<Credentials>, ApiError> {
    let found = sqlx::query_as::<_, Credentials>(
        "SELECT id, username, email, password_hash FROM users WHERE username_key = $1",
    )
    .bind(username.key().as_str())
    .fetch_optional(db)
    .await
    .query("users: credentials by username")?;
    Ok(found)
}

/// Whether an account already has this username (by its key) or this email (regardless of
/// case): the cheap check registration makes before it hashes. The unique indexes still decide
/// races.
#[tracing::instrument(name = "SELECT users", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "users"))]
pub async fn username_or_email_taken(
    db: impl PgExecutor<'_>,
    username: &Username,
    email: &Email,
) -> Result<bool, ApiError> {
    let taken =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username_key = $1 OR lower(email) = lower($2))")
            .bind(username.key().as_str())
            .bind(email.as_str())
            .fetch_one(db)
            .await
            .query("users: username or email taken")?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::TestDatabase;

    fn account(username: &str, email: &str) -> (Username, Email) {
        (Username::parse(username.into()).unwrap(), Email::parse(email.into()).unwrap())
    }

    /// The race the pre-check cannot close: two registrations that both found the name free.
    /// The INSERT's unique indexes decide, and the loser is told 409 like the pre-check says.
    #[tokio::test]
    async fn a_taken_name_or_email_at_insert_is_a_conflict() {
        let db = TestDatabase::new().await;
        let (alice, email) = account("Alice", "alice@example.com");
        let created = insert_user(&db.pool, &alice, &email, "$argon2id$x").await.unwrap();
        assert_eq!((created.username.as_str(), created.email.as_str()), ("Alice", "alice@example.com"));
        for (username, email) in [("aLICE", "other@example.com"), ("bob", "ALICE@Example.com")] {
            let (username, email) = account(username, email);
            assert!(username_or_email_taken(&db.pool, &username, &email).await.unwrap());
            let err = insert_user(&db.pool, &username, &email, "$argon2id$x").await.unwrap_err();
            assert!(matches!(err, ApiError::Conflict), "{username:?} {email:?}: {err:?}");
        }
        let (free, free_email) = account("carol", "carol@example.com");
        assert!(!username_or_email_taken(&db.pool, &free, &free_email).await.unwrap());
    }

    /// Each name in [`users_constraint`] is one the schema has: a violation written past the
    /// validated types comes back as the client error the name maps to.
    #[tokio::test]
    async fn the_mapped_constraints_are_the_schemas() {
        let db = TestDatabase::new().await;
        let insert = |username: &'static str, email: &'static str| {
            let pool = db.pool.clone();
            async move {
                sqlx::query("INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'h')")
                    .bind(username)
                    .bind(email)
                    .execute(&pool)
                    .await
                    .query("users: raw insert")
                    .on_constraint(users_constraint)
            }
        };
        insert("erin", "erin@example.com").await.unwrap();
        assert!(matches!(insert("ERIN", "e2@example.com").await, Err(ApiError::Conflict)));
        assert!(matches!(insert("erin2", "ERIN@example.com").await, Err(ApiError::Conflict)));
        assert!(matches!(insert("white space", "ws@example.com").await, Err(ApiError::InvalidField)));
        assert!(matches!(insert("frank", "@example.com").await, Err(ApiError::InvalidField)));
    }

    /// The generated column is the Rust key for every name the table holds, and login finds
    /// the account by any spelling of its name.
    #[tokio::test]
    async fn the_stored_key_is_the_rust_key_and_every_spelling_finds_the_account() {
        let db = TestDatabase::new().await;
        for (i, name) in ["Alice", "b.O-b_9", "ZZZ", "x.Y"].into_iter().enumerate() {
            let (username, email) = account(name, &format!("u{i}@example.com"));
            insert_user(&db.pool, &username, &email, "$argon2id$x").await.unwrap();
            let stored: String = sqlx::query_scalar("SELECT username_key FROM users WHERE username = $1")
                .bind(name)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(stored, username.key().as_str());
        }
        for spelling in ["ＡＬＩＣＥ", "alice", "Alice", "ａｌｉｃｅ"] {
            let login = crate::user::LoginCredentials::parse(
                serde_json::from_value(serde_json::json!({"username": spelling, "password": "pw"})).unwrap(),
            )
            .unwrap();
            let found = credentials_by_username(&db.pool, &login.username).await.unwrap();
            assert_eq!(found.map(|c| c.username).as_deref(), Some("Alice"), "{spelling:?}");
        }
        let (alice, email) = account("ALICE", "other@example.com");
        assert!(username_or_email_taken(&db.pool, &alice, &email).await.unwrap());
    }

    #[tokio::test]
    async fn other_failures_stay_database_errors() {
        let db = TestDatabase::new().await;
        db.pool.close().await;
        let (name, email) = account("dave", "dave@example.com");
        let err = insert_user(&db.pool, &name, &email, "$argon2id$x").await.unwrap_err();
        let ApiError::Database(e) = err else { panic!("{err:?}") };
        assert!(e.is_unavailable(), "a closed pool is the database being unavailable: {e:?}");
    }
}
