//! The task resource: what clients may send, how it is validated, and what is returned.
//!
//! Bodies are parsed in two steps: first as a JSON object, to name server-owned fields
//! precisely, then into a typed struct that rejects unknown fields and wrong types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::dates;
use crate::error::ApiError;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Fields the server sets; a client sending them gets 400, not silence.
const SERVER_OWNED: [&str; 4] = ["id", "user_id", "created_at", "updated_at"];

/// A task's status. Stored as text in `tasks.status` (varchar with the CHECK constraint
/// `tasks_status_values`), not as a PostgreSQL enum type: adding a value is then a constraint
/// swap that needs no table rewrite, and the spelling is the same in JSON and in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum Status {
    Pending,
    InProgress,
    Completed,
}

/// A task's priority; stored like [`Status`] (`tasks.priority`, CHECK `tasks_priority_values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "varchar", rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

/// A task as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Task {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub status: Status,
    pub priority: Priority,
    /// Always within years 0000-9999 in UTC (see [`dates`]), so it is valid RFC 3339.
    #[serde(serialize_with = "platform::timestamp::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(serialize_with = "platform::timestamp::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "platform::timestamp::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// `POST /tasks` body. Only `title` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// 1 to 200 characters, not only whitespace.
    #[schema(example = "Learn AWS ECS")]
    pub title: Option<String>,
    /// Up to 10,000 characters.
    pub description: Option<String>,
    /// Default `pending`.
    pub status: Option<Status>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    /// RFC 3339 date-time (`2024-01-15T00:00:00Z`) or exactly `YYYY-MM-DD` (midnight UTC),
    /// within years 0000-9999 in UTC; fractions beyond milliseconds are dropped.
    #[schema(example = "2024-01-15T00:00:00Z")]
    pub due_date: Option<String>,
}

/// Absent means "leave unchanged"; `null` means "clear" (only `description` and `due_date` may
/// be cleared).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /tasks/{id}` body: a partial update. Absent fields are unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    /// `null` clears the description.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Status>)]
    pub status: Option<Option<Status>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Priority>)]
    pub priority: Option<Option<Priority>>,
    /// `null` clears the due date.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub due_date: Option<Option<String>>,
}

/// A validated new task.
#[derive(Debug)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
}

/// A validated partial update. `Some(None)` clears a nullable field.
#[derive(Debug, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub due_date: Option<Option<DateTime<Utc>>>,
}

fn typed<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, ApiError> {
    if let Some(field) = SERVER_OWNED.iter().find(|f| body.contains_key(**f)) {
        return Err(ApiError::BadRequest(format!("{field} is set by the server and cannot be written")));
    }
    serde_json::from_value(Value::Object(body)).map_err(|e| {
        ApiError::BadRequest(format!("Invalid request body: {}", platform::http::body_error_detail(&e.to_string())))
    })
}

fn title(value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest("title must not contain NUL characters".into()));
    }
    if value.trim().is_empty() {
        return Err(ApiError::BadRequest("Title is required and must not be blank".into()));
    }
    if value.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::BadRequest(format!("title must be at most {MAX_TITLE_CHARS} characters")));
    }
    Ok(value)
}

fn description(value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest("description must not contain NUL characters".into()));
    }
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::BadRequest(format!("description must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(value)
}

/// A `due_date` by the contract's rules ([`dates::parse_due_date`]); a violation is a 400.
pub fn due_date(value: &str) -> Result<DateTime<Utc>, ApiError> {
    dates::parse_due_date(value).map_err(|e| ApiError::BadRequest(e.to_string()))
}

impl NewTask {
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let raw: CreateTask = typed(body)?;
        Ok(Self {
            title: title(raw.title.ok_or_else(|| ApiError::BadRequest("Title is required".into()))?)?,
            description: raw.description.map(description).transpose()?,
            status: raw.status.unwrap_or(Status::Pending),
            priority: raw.priority.unwrap_or(Priority::Medium),
            due_date: raw.due_date.as_deref().map(due_date).transpose()?,
        })
    }
}

fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::BadRequest(format!("{field} cannot be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

impl TaskChanges {
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Err(ApiError::BadRequest("Request body must contain at least one field to update".into()));
        }
        let raw: UpdateTask = typed(body)?;
        Ok(Self {
            title: not_null("title", raw.title)?.map(title).transpose()?,
            description: raw.description.map(|d| d.map(description).transpose()).transpose()?,
            status: not_null("status", raw.status)?,
            priority: not_null("priority", raw.priority)?,
            due_date: raw.due_date.map(|d| d.as_deref().map(due_date).transpose()).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn bad_request(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn create_defaults_match_the_guide() {
        let t = NewTask::parse(obj(json!({"title": "Learn AWS ECS"}))).unwrap();
        assert_eq!((t.status, t.priority, t.description, t.due_date), (Status::Pending, Priority::Medium, None, None));
    }

    #[test]
    fn create_with_all_fields() {
        let t = NewTask::parse(obj(json!({
            "title": "Learn AWS ECS", "description": "Complete the guide", "status": "in_progress",
            "priority": "high", "due_date": "2024-01-15T00:00:00Z"
        })))
        .unwrap();
        assert_eq!(t.status, Status::InProgress);
        assert_eq!(t.due_date.unwrap().to_rfc3339(), "2024-01-15T00:00:00+00:00");
    }

    #[test]
    fn title_rules() {
        assert!(bad_request(NewTask::parse(obj(json!({})))).contains("Title is required"));
        assert!(bad_request(NewTask::parse(obj(json!({"title": "   "})))).contains("blank"));
        assert!(bad_request(NewTask::parse(obj(json!({"title": "a".repeat(201)})))).contains("200"));
        assert!(NewTask::parse(obj(json!({"title": "é".repeat(200)}))).is_ok());
        assert!(bad_request(NewTask::parse(obj(json!({"title": "a\u{0}b"})))).contains("NUL"));
        assert!(bad_request(NewTask::parse(obj(json!({"title": 5})))).contains("invalid type"));
    }

    #[test]
    fn value_sets_and_dates_are_checked() {
        assert!(bad_request(NewTask::parse(obj(json!({"title": "t", "status": "done"})))).contains("unknown variant"));
        assert!(
            bad_request(NewTask::parse(obj(json!({"title": "t", "priority": "urgent"})))).contains("unknown variant")
        );
        for bad in ["tomorrow", "2024-13-01", "2024-02-30", "2024-01-15T25:00:00Z", "20240115"] {
            assert!(
                bad_request(NewTask::parse(obj(json!({"title": "t", "due_date": bad})))).contains("due_date"),
                "{bad}"
            );
        }
        assert!(NewTask::parse(obj(json!({"title": "t", "due_date": "2024-01-15"}))).is_ok());
        assert!(NewTask::parse(obj(json!({"title": "t", "due_date": "2024-01-15T10:00:00+02:00"}))).is_ok());
    }

    #[test]
    fn unknown_and_server_owned_fields_are_rejected() {
        assert!(bad_request(NewTask::parse(obj(json!({"title": "t", "colour": "red"})))).contains("unknown field"));
        for field in ["id", "user_id", "created_at", "updated_at"] {
            let mut body = obj(json!({"title": "t"}));
            body.insert(field.into(), json!(1));
            assert!(bad_request(NewTask::parse(body)).contains("set by the server"), "{field}");
        }
    }

    #[test]
    fn description_is_bounded() {
        assert!(NewTask::parse(obj(json!({"title": "t", "description": "d".repeat(10_000)}))).is_ok());
        assert!(
            bad_request(NewTask::parse(obj(json!({"title": "t", "description": "d".repeat(10_001)}))))
                .contains("10000")
        );
    }

    #[test]
    fn partial_update_distinguishes_absent_and_null() {
        let c = TaskChanges::parse(obj(json!({"status": "completed"}))).unwrap();
        assert_eq!(c.status, Some(Status::Completed));
        assert!(c.title.is_none() && c.description.is_none() && c.due_date.is_none());
        let c = TaskChanges::parse(obj(json!({"description": null, "due_date": null}))).unwrap();
        assert_eq!(c.description, Some(None));
        assert_eq!(c.due_date, Some(None));
        assert!(bad_request(TaskChanges::parse(obj(json!({"title": null})))).contains("cannot be null"));
        assert!(bad_request(TaskChanges::parse(obj(json!({})))).contains("at least one field"));
        assert!(bad_request(TaskChanges::parse(obj(json!({"id": 3})))).contains("set by the server"));
    }
}
