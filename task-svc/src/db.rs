//! task-svc's queries. Ownership is decided inside each statement (never read-then-write in
//! Rust), constraint violations are mapped to client errors by name right here (the shared
//! [`ConstraintExt::on_constraint`]), and each function takes an executor so it works on the
//! pool or in a transaction.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use platform::db::{ConstraintExt, QueryResultExt};

use crate::error::ApiError;
use crate::task::{NewTask, Priority, Status, Task, TaskChanges};

/// The columns of [`Task`], in the order the struct declares them.
macro_rules! task_columns {
    () => {
        "id, user_id, title, description, status, priority, due_date, created_at, updated_at"
    };
}

/// What a request for one task by id found: decided from a single row version, so existence
/// and ownership can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access<T> {
    /// The caller owns the task; the read or write happened.
    Granted(T),
    /// The task exists and belongs to someone else; nothing was written.
    NotOwned,
    /// There is no such task (any more).
    NotFound,
}

#[derive(sqlx::FromRow)]
struct OwnedTask {
    #[sqlx(flatten)]
    task: Task,
    owned: bool,
}

impl From<Option<OwnedTask>> for Access<Task> {
    fn from(row: Option<OwnedTask>) -> Self {
        match row {
            None => Self::NotFound,
            Some(OwnedTask { owned: false, .. }) => Self::NotOwned,
            Some(OwnedTask { task, owned: true }) => Self::Granted(task),
        }
    }
}

/// The CHECK constraints on task fields (migrations/), and the 400 each one means. task.rs
/// validates the same rules first, so these fire only for a writer that skipped it.
fn field_check(constraint: &str) -> Option<ApiError> {
    let message = match constraint {
        "tasks_title_length" => "title must be 1 to 200 characters",
        "tasks_description_length" => "description must be at most 10000 characters",
        "tasks_status_values" => "status must be one of pending, in_progress, completed",
        "tasks_priority_values" => "priority must be one of low, medium, high",
        "tasks_due_date_range" => "due_date must lie within the years 0000 to 9999 in UTC",
        _ => return None,
    };
    Some(ApiError::BadRequest(message.to_owned()))
}

/// Creates a task for `user_id`. A user id with no user row is [`ApiError::UnknownUser`]
/// (the identity outlived its user).
#[tracing::instrument(name = "INSERT tasks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "INSERT", db.collection.name = "tasks"))]
pub async fn insert(db: impl PgExecutor<'_>, user_id: i64, t: &NewTask) -> Result<Task, ApiError> {
    sqlx::query_as::<_, Task>(concat!(
        "INSERT INTO tasks (user_id, title, description, status, priority, due_date)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING ",
        task_columns!()
    ))
    .bind(user_id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(t.status)
    .bind(t.priority)
    .bind(t.due_date)
    .fetch_one(db)
    .await
    .query("tasks: insert")
    .on_constraint(|constraint| match constraint {
        "tasks_user_id_fkey" => Some(ApiError::UnknownUser),
        other => field_check(other),
    })
}

/// Task `id` if `user_id` owns it.
#[tracing::instrument(name = "SELECT tasks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "tasks"))]
pub async fn get(db: impl PgExecutor<'_>, id: i64, user_id: i64) -> Result<Access<Task>, ApiError> {
    // One row version answers both questions.
    let row = sqlx::query_as::<_, OwnedTask>(concat!(
        "SELECT ",
        task_columns!(),
        ", user_id = $2 AS owned FROM tasks WHERE id = $1"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .query("tasks: get")?;
    Ok(row.into())
}

/// Applies `changes` if `user_id` owns task `id`; returns the updated task.
///
/// The row is locked first (`FOR UPDATE`), so a concurrent write is waited for and its result
/// decides: a task deleted meanwhile is [`Access::NotFound`], never [`Access::NotOwned`]. (The
/// statement's snapshot predates that delete; deciding from it was the old 403-to-the-owner race.)
#[tracing::instrument(name = "UPDATE tasks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "UPDATE", db.collection.name = "tasks"))]
pub async fn update(
    db: impl PgExecutor<'_>,
    id: i64,
    user_id: i64,
    changes: &TaskChanges,
) -> Result<Access<Task>, ApiError> {
    let row = sqlx::query_as::<_, OwnedTask>(concat!(
        "WITH target AS (
             SELECT id AS target_id, user_id = $2 AS owned FROM tasks WHERE id = $1 FOR UPDATE
         ), updated AS (
             UPDATE tasks SET
                 title       = COALESCE($3, title),
                 description = CASE WHEN $4 THEN $5 ELSE description END,
                 status      = COALESCE($6, status),
                 priority    = COALESCE($7, priority),
                 due_date    = CASE WHEN $8 THEN $9 ELSE due_date END
             FROM target
             WHERE id = target_id AND owned
             RETURNING ",
        task_columns!(),
        "
         )
         SELECT updated.*, true AS owned FROM updated
         UNION ALL
         SELECT ",
        task_columns!(),
        ", false AS owned FROM tasks
         WHERE id = (SELECT target_id FROM target WHERE NOT owned)"
    ))
    .bind(id)
    .bind(user_id)
    .bind(changes.title.as_deref())
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.status)
    .bind(changes.priority)
    .bind(changes.due_date.is_some())
    .bind(changes.due_date.flatten())
    .fetch_optional(db)
    .await
    .query("tasks: update")
    .on_constraint(field_check)?;
    Ok(row.into())
}

/// Deletes task `id` if `user_id` owns it. Locks the row first, like [`update`].
#[tracing::instrument(name = "DELETE tasks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "DELETE", db.collection.name = "tasks"))]
pub async fn delete(db: impl PgExecutor<'_>, id: i64, user_id: i64) -> Result<Access<()>, ApiError> {
    let (existed, deleted): (bool, bool) = sqlx::query_as(
        "WITH target AS (
             SELECT id AS target_id, user_id = $2 AS owned FROM tasks WHERE id = $1 FOR UPDATE
         ), deleted AS (
             DELETE FROM tasks USING target WHERE id = target_id AND owned RETURNING id
         )
         SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM deleted)",
    )
    .bind(id)
    .bind(user_id)
    .fetch_one(db)
    .await
    .query("tasks: delete")?;
    Ok(match (existed, deleted) {
        (_, true) => Access::Granted(()),
        (true, false) => Access::NotOwned,
        (false, false) => Access::NotFound,
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
#[tracing::instrument(name = "SELECT tasks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.operation.name = "SELECT", db.collection.name = "tasks"))]
pub async fn list(db: impl PgExecutor<'_>, q: &ListQuery) -> Result<Vec<Task>, ApiError> {
    let tasks = sqlx::query_as::<_, Task>(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks
         WHERE user_id = $1
           AND ($2::varchar IS NULL OR status = $2)
           AND ($3::varchar IS NULL OR priority = $3)
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
         ORDER BY created_at DESC, id DESC
         LIMIT $6"
    ))
    .bind(q.user_id)
    .bind(q.status)
    .bind(q.priority)
    .bind(q.after.map(|c| c.created_at))
    .bind(q.after.map_or(0, |c| c.id))
    .bind(q.limit)
    .fetch_all(db)
    .await
    .query("tasks: list")?;
    Ok(tasks)
}
