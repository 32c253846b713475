//! task-svc's handlers, each with its OpenAPI description; the router is built from them.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::DateTime;
use platform::ErrorBody;
use platform::http::{ApiJson, ApiQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::db::{self, Access, Cursor, ListQuery};
use crate::error::ApiError;
use crate::task::{NewTask, Priority, Status, Task, TaskChanges};
use crate::{AppState, dates};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// The caller, as the gateway verified it: exactly one `X-User-Id` header holding a positive
/// integer. Anything else is 401 — task-svc fails closed.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(platform::identity::USER_ID).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::Unauthenticated);
        };
        let id = value.to_str().ok().and_then(|v| v.parse::<i64>().ok()).filter(|id| *id > 0);
        id.map(Caller).ok_or(ApiError::Unauthenticated)
    }
}

/// A task id from the path: non-numeric is 400; numeric but impossible (0, beyond 64 bits) is 404.
fn task_id(raw: &str) -> Result<i64, ApiError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest("Task id must be a positive integer".into()));
    }
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::NotFound(shorten(raw))),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub service: String,
}

/// Liveness; public (the gateway passes it through for the ALB health check).
#[utoipa::path(get, path = "/tasks/health", tag = "tasks", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "healthy".into(), service: "task".into() })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskEnvelope {
    pub task: Task,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
}

fn encode_cursor(task: &Task) -> String {
    hex::encode(format!("{}:{}", task.created_at.timestamp_micros(), task.id))
}

/// A cursor from [`encode_cursor`]. Anything else, including a time no task can have been
/// created at (outside years 0000-9999), is 400 before it reaches the database.
fn decode_cursor(raw: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::BadRequest("Invalid cursor".into());
    let bytes = hex::decode(raw).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let created_at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?)
        .filter(dates::is_representable)
        .ok_or_else(invalid)?;
    Ok(Cursor { created_at, id: id.parse().map_err(|_| invalid())? })
}

impl<T> Access<T> {
    /// The contract's answer: the value, 403 for another user's task, 404 naming the id as sent.
    fn or_reject(self, raw_id: &str) -> Result<T, ApiError> {
        match self {
            Self::Granted(value) => Ok(value),
            Self::NotOwned => Err(ApiError::Forbidden),
            Self::NotFound => Err(ApiError::NotFound(shorten(raw_id))),
        }
    }
}

/// An id as the client sent it, cut to 20 characters for messages.
fn shorten(raw: &str) -> String {
    match raw.char_indices().nth(20) {
        Some((end, _)) => format!("{}...", &raw[..end]),
        None => raw.to_owned(),
    }
}

const UNAUTHORIZED: &str = "no valid identity (the gateway sets it from the bearer token)";

/// Creates a task owned by the caller.
#[utoipa::path(post, path = "/tasks", tag = "tasks", request_body = crate::task::CreateTask, security(("bearer" = [])), responses(
    (status = 201, body = TaskEnvelope),
    (status = 400, body = ErrorBody, description = "invalid field, unknown or server-owned field, malformed JSON"),
    (status = 401, body = ErrorBody, description = UNAUTHORIZED),
    (status = 413, body = ErrorBody),
))]
pub async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<TaskEnvelope>), ApiError> {
    let new = NewTask::parse(body)?;
    let task = db::insert(&state.pool, caller.0, &new).await?;
    Ok((StatusCode::CREATED, Json(TaskEnvelope { task })))
}

/// The caller's tasks, newest first, one page at a time.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(ListParams), security(("bearer" = [])), responses(
    (status = 200, body = TaskList),
    (status = 400, body = ErrorBody, description = "invalid query parameter or cursor"),
    (status = 401, body = ErrorBody, description = UNAUTHORIZED),
))]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<TaskList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let query = ListQuery {
        user_id: caller.0,
        status: params.status,
        priority: params.priority,
        after,
        limit: i64::from(limit) + 1,
    };
    let mut tasks = db::list(&state.pool, &query).await?;
    let next_cursor = if tasks.len() > limit as usize {
        tasks.truncate(limit as usize);
        tasks.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(TaskList { tasks, next_cursor }))
}

/// One task; another user's task is 403.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path)), security(("bearer" = [])), responses(
    (status = 200, body = TaskEnvelope),
    (status = 400, body = ErrorBody, description = "id is not a positive integer"),
    (status = 401, body = ErrorBody, description = UNAUTHORIZED),
    (status = 403, body = ErrorBody, description = "the task belongs to another user"),
    (status = 404, body = ErrorBody),
))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let id = task_id(&raw)?;
    let task = db::get(&state.pool, id, caller.0).await?.or_reject(&raw)?;
    Ok(Json(TaskEnvelope { task }))
}

/// Partial update: absent fields are unchanged; `null` clears `description` or `due_date`.
#[utoipa::path(put, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path)), request_body = crate::task::UpdateTask, security(("bearer" = [])), responses(
    (status = 200, body = TaskEnvelope),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody, description = UNAUTHORIZED),
    (status = 403, body = ErrorBody, description = "the task belongs to another user"),
    (status = 404, body = ErrorBody),
))]
pub async fn update_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let id = task_id(&raw)?;
    let changes = TaskChanges::parse(body)?;
    let task = db::update(&state.pool, id, caller.0, &changes).await?.or_reject(&raw)?;
    Ok(Json(TaskEnvelope { task }))
}

/// Deletes a task of the caller's.
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", params(("id" = i64, Path)), security(("bearer" = [])), responses(
    (status = 204, description = "deleted"),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody, description = UNAUTHORIZED),
    (status = 403, body = ErrorBody, description = "the task belongs to another user"),
    (status = 404, body = ErrorBody),
))]
pub async fn delete_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = task_id(&raw)?;
    db::delete(&state.pool, id, caller.0).await?.or_reject(&raw)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids() {
        assert_eq!(task_id("42").unwrap(), 42);
        assert!(matches!(task_id("abc"), Err(ApiError::BadRequest(_))));
        assert!(matches!(task_id("-1"), Err(ApiError::BadRequest(_))));
        assert!(matches!(task_id("1.5"), Err(ApiError::BadRequest(_))));
        assert!(matches!(task_id("0"), Err(ApiError::NotFound(_))));
        assert!(matches!(task_id("99999999999999999999999999"), Err(ApiError::NotFound(_))));
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let c = Cursor { created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(), id: 9 };
        let encoded = hex::encode(format!("{}:{}", c.created_at.timestamp_micros(), c.id));
        assert_eq!(decode_cursor(&encoded).unwrap(), c);
        let year_10000 = hex::encode("253402300800000000:1");
        let year_minus_1 = hex::encode("-62198755200000001:1");
        for bad in
            ["zz", "", "3a", &hex::encode("x:y"), &hex::encode("99999999999999999999:1"), &year_10000, &year_minus_1]
        {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
