//! The shared constraint mapping ([`platform::db::ConstraintExt`]) against real PostgreSQL: the
//! names the server reports for a unique index, a CHECK and a foreign key are the ones a service
//! maps, and every other failure stays a [`QueryError`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use platform::db::{ConstraintExt, QueryError, QueryResultExt};
use sqlx::PgPool;
use testkit::TestDatabase;

/// A service's error type, as far as the mapping cares.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("name taken")]
    Taken,
    #[error("name too long")]
    TooLong,
    #[error("no such parent")]
    NoParent,
    #[error(transparent)]
    Database(#[from] QueryError),
}

/// What the service maps; `items_id_positive` is deliberately left out.
fn client_error(constraint: &str) -> Option<ServiceError> {
    match constraint {
        "items_name_lower_key" => Some(ServiceError::Taken),
        "items_name_length" => Some(ServiceError::TooLong),
        "items_parent_fkey" => Some(ServiceError::NoParent),
        _ => None,
    }
}

async fn schema() -> TestDatabase {
    let db = TestDatabase::empty().await;
    sqlx::raw_sql(
        "CREATE TABLE parents (id int PRIMARY KEY);
         INSERT INTO parents VALUES (1);
         CREATE TABLE items (
             id     int  PRIMARY KEY CONSTRAINT items_id_positive CHECK (id > 0),
             parent int  NOT NULL REFERENCES parents (id),
             name   text NOT NULL CONSTRAINT items_name_length CHECK (char_length(name) <= 5)
         );
         CREATE UNIQUE INDEX items_name_lower_key ON items (lower(name));",
    )
    .execute(&db.pool)
    .await
    .expect("test schema");
    db
}

async fn insert(pool: &PgPool, id: i32, parent: i32, name: &str) -> Result<(), ServiceError> {
    sqlx::query("INSERT INTO items (id, parent, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(parent)
        .bind(name)
        .execute(pool)
        .await
        .query("items: insert")
        .on_constraint(client_error)?;
    Ok(())
}

#[tokio::test]
async fn each_violated_constraint_becomes_the_error_its_name_maps_to() {
    let db = schema().await;
    insert(&db.pool, 1, 1, "Alice").await.unwrap();
    assert!(matches!(insert(&db.pool, 2, 1, "aLICE").await, Err(ServiceError::Taken)), "unique index");
    assert!(matches!(insert(&db.pool, 3, 1, "Bobbette").await, Err(ServiceError::TooLong)), "CHECK");
    assert!(matches!(insert(&db.pool, 4, 2, "Carol").await, Err(ServiceError::NoParent)), "foreign key");
}

#[tokio::test]
async fn other_failures_stay_query_errors_with_their_cause() {
    let db = schema().await;
    // A constraint the service does not map: still a violation, named, but not a client error.
    let Err(ServiceError::Database(unmapped)) = insert(&db.pool, -1, 1, "Dave").await else {
        panic!("an unmapped constraint must stay a QueryError");
    };
    assert_eq!((unmapped.query, unmapped.constraint()), ("items: insert", Some("items_id_positive")));
    assert!(!unmapped.is_unavailable());
    // No constraint at all (division by zero): the closure is not even asked.
    let failed: Result<i32, ServiceError> = sqlx::query_scalar("SELECT 1 / 0")
        .fetch_one(&db.pool)
        .await
        .query("divide")
        .on_constraint(|_| -> Option<ServiceError> { panic!("asked about a non-constraint error") });
    let Err(ServiceError::Database(e)) = failed else { panic!("{failed:?}") };
    assert_eq!(e.constraint(), None);
    let chain = format!("{:#}", anyhow::Error::new(e));
    assert!(chain.starts_with("query \"divide\" failed: ") && chain.contains("division by zero"), "{chain}");
}
