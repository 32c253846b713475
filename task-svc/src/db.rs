//! task-svc's queries. Ownership is decided inside each statement (never read-then-write in
//! Rust), and each function takes an executor so it works on the pool or in a transaction.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::task::{NewTask, Priority, Status, Task, TaskChanges};

/// A task together with whether the caller owns it.
#[derive(Debug, sqlx::FromRow)]
pub struct OwnedTask {
    #[sqlx(flatten)]
    pub task: Task,
    pub owned: bool,
}

/// What happened to a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    NotOwned,
    NotFound,
}

pub async fn insert(db: impl PgExecutor<'_>, user_id: i64, t: &NewTask) -> Result<Task, sqlx::Error> {
    sqlx::query_as::<_, Task>(
        "INSERT INTO tasks (user_id, title, description, status, priority, due_date)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING *",
    )
    .bind(user_id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(t.status.as_str())
    .bind(t.priority.as_str())
    .bind(t.due_date)
    .fetch_one(db)
    .await
}

/// The task with `id` and whether `user_id` owns it; `None` when there is no such task.
pub async fn get(db: impl PgExecutor<'_>, id: i64, user_id: i64) -> Result<Option<OwnedTask>, sqlx::Error> {
    sqlx::query_as::<_, OwnedTask>("SELECT t.*, (t.user_id = $2) AS owned FROM tasks t WHERE t.id = $1")
        .bind(id)
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// Applies `changes` if `user_id` owns the task. Returns the updated task (owned = true), the
/// untouched task (owned = false), or `None` when it does not exist — in one statement.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: i64,
    user_id: i64,
    changes: &TaskChanges,
) -> Result<Option<OwnedTask>, sqlx::Error> {
    // Both parts of the statement see the same snapshot: the second SELECT finds the row only
    // when the UPDATE did not touch it (someone else's task).
    sqlx::query_as::<_, OwnedTask>(
        "WITH updated AS (
             UPDATE tasks SET
                 title       = COALESCE($3, title),
                 description = CASE WHEN $4 THEN $5 ELSE description END,
                 status      = COALESCE($6, status),
                 priority    = COALESCE($7, priority),
                 due_date    = CASE WHEN $8 THEN $9 ELSE due_date END
             WHERE id = $1 AND user_id = $2
             RETURNING *
         )
         SELECT updated.*, true AS owned FROM updated
         UNION ALL
         SELECT t.*, false AS owned FROM tasks t
         WHERE t.id = $1 AND NOT EXISTS (SELECT 1 FROM updated)",
    )
    .bind(id)
    .bind(user_id)
    .bind(changes.title.as_deref())
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.status.map(Status::as_str))
    .bind(changes.priority.map(Priority::as_str))
    .bind(changes.due_date.is_some())
    .bind(changes.due_date.flatten())
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: i64, user_id: i64) -> Result<Deleted, sqlx::Error> {
    let (deleted, existed): (bool, bool) = sqlx::query_as(
        "WITH deleted AS (DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING id)
         SELECT EXISTS (SELECT 1 FROM deleted), EXISTS (SELECT 1 FROM tasks WHERE id = $1)",
    )
    .bind(id)
    .bind(user_id)
    .fetch_one(db)
    .await?;
    Ok(match (deleted, existed) {
        (true, _) => Deleted::Yes,
        (false, true) => Deleted::NotOwned,
        (false, false) => Deleted::NotFound,
    })
}

/// Where a page starts: strictly after this (created_at, id) in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

pub struct ListQuery {
    pub user_id: i64,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// One page of a user's tasks, newest first, using the (user_id, created_at, id) index.
pub async fn list(db: impl PgExecutor<'_>, q: &ListQuery) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as::<_, Task>(
        "SELECT * FROM tasks
         WHERE user_id = $1
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR priority = $3)
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
         ORDER BY created_at DESC, id DESC
         LIMIT $6",
    )
    .bind(q.user_id)
    .bind(q.status.map(Status::as_str))
    .bind(q.priority.map(Priority::as_str))
    .bind(q.after.map(|c| c.created_at))
    .bind(q.after.map_or(0, |c| c.id))
    .bind(q.limit)
    .fetch_all(db)
    .await
}
