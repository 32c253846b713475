//! Contract edges from issue 13, driven through the router against a fresh PostgreSQL database:
//! dates that must round-trip as RFC 3339, the owner racing their own writes, and database
//! errors mapped where the query runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::Reply;
use testkit::TestDatabase;
use testkit::api::{request, send};

use crate::harness::{Api, api, api_on};

/// RFC 3339 §5.6 with a four-digit year: what every client parser reads.
fn assert_rfc3339(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("{value} is not a string"));
    let b = text.as_bytes();
    assert!(b.len() >= 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-', "{text}");
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
}

#[tokio::test]
async fn dates_outside_rfc3339_or_the_strict_date_form_are_400() {
    let api = api().await;
    let alice = api.user("alice").await;
    let id = api.create_id(&alice, json!({"title": "t", "due_date": "2024-01-15"})).await;
    let bad = [
        // Issue 13: in range before the offset is applied, year 10000 after.
        "9999-12-31T23:30:00-01:00",
        // ... and year -1 at the other end.
        "0000-01-01T00:30:00+01:00",
        // The date-only form is exactly YYYY-MM-DD: no signs, single digits, spaces.
        "+2024-1-15",
        "+2024-01-15",
        "-2024-01-15",
        "2024-1-15",
        "2024-01-5",
        " 2024-01-15",
        "2024-01-15 ",
        "2024-01-1 ",
        "02024-01-15",
        "2024/01/15",
        // Date-times: RFC 3339 §5.6 only.
        "2024-01-15 10:00:00Z",
        "2024-01-15T10:00:00",
        "2024-01-15T10:00Z",
        "2024-01-15T10:00:00.Z",
        "2024-01-15T10:00:00\u{2212}01:00",
        "2024-01-15T10:00:00+24:00",
        "+10000-01-01T00:30:00.000Z",
        // A leap second cannot be stored and returned as itself.
        "2016-12-31T23:59:60Z",
    ];
    for value in bad {
        let r = api.call(Method::POST, "/tasks", Some(&alice), Some(json!({"title": "t", "due_date": value}))).await;
        assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("due_date"), "create {value:?}: {}", r.json);
        let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"due_date": value}))).await;
        assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("due_date"), "update {value:?}: {}", r.json);
    }
    let r = api.call(Method::GET, "/tasks", Some(&alice), None).await;
    assert_eq!(r.json["tasks"].as_array().unwrap().len(), 1, "nothing stored");
    assert_eq!(r.json["tasks"][0]["due_date"], "2024-01-15T00:00:00.000Z", "nothing changed");
}

#[tokio::test]
async fn accepted_dates_round_trip_as_rfc3339_with_four_digit_years() {
    let api = api().await;
    let alice = api.user("alice").await;
    let cases = [
        ("9999-12-31T23:30:00+01:00", "9999-12-31T22:30:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("0000-01-01T00:30:00-01:00", "0000-01-01T01:30:00.000Z"),
        ("0000-01-01", "0000-01-01T00:00:00.000Z"),
        ("9999-12-31", "9999-12-31T00:00:00.000Z"),
        ("2024-02-29", "2024-02-29T00:00:00.000Z"),
        // Lower-case t and z are RFC 3339; fractions finer than milliseconds are truncated.
        ("2024-01-15t10:00:00.123456789z", "2024-01-15T10:00:00.123Z"),
        ("2024-01-15T10:00:00-00:00", "2024-01-15T10:00:00.000Z"),
    ];
    let mut ids = Vec::new();
    for (input, stored) in cases {
        let r = api.call(Method::POST, "/tasks", Some(&alice), Some(json!({"title": input, "due_date": input}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{input}: {}", r.json);
        assert_eq!(r.json["task"]["due_date"], stored, "{input}");
        let id = r.json["task"]["id"].as_i64().unwrap();
        let r = api.call(Method::GET, &format!("/tasks/{id}"), Some(&alice), None).await;
        assert_eq!(r.json["task"]["due_date"], stored, "{input}");
        // Updating to the same value stores the same instant.
        let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"due_date": input}))).await;
        assert_eq!(r.json["task"]["due_date"], stored, "{input}");
        // What the API returns, it accepts back unchanged.
        let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"due_date": stored}))).await;
        assert_eq!(r.json["task"]["due_date"], stored, "{input}");
        ids.push(id);
    }
    let r = api.call(Method::GET, "/tasks?limit=100", Some(&alice), None).await;
    let tasks = r.json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), cases.len());
    for task in tasks {
        for field in ["due_date", "created_at", "updated_at"] {
            assert_rfc3339(&task[field]);
        }
    }
}

#[tokio::test]
async fn cursors_carrying_times_outside_rfc3339_are_400() {
    let api = api().await;
    let alice = api.user("alice").await;
    // A cursor is hex("<created_at in µs since 1970>:<id>"); these lie outside years 0000-9999.
    for micros in [-380_000_000_000_000_000_i64, 253_402_300_800_000_000, 8_000_000_000_000_000_000] {
        let cursor = hex::encode(format!("{micros}:1"));
        let r = api.call(Method::GET, &format!("/tasks?cursor={cursor}"), Some(&alice), None).await;
        assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("Invalid cursor"), "{micros}: {}", r.json);
    }
}

/// Runs `statement` on task `id` in a transaction, sends the request while that transaction
/// holds the row, commits once the request waits for it, and returns the request's reply.
async fn race(api: &Api, statement: &str, id: i64, method: Method, user: &str, body: Option<Value>) -> Reply {
    let mut tx = api.db.pool.begin().await.unwrap();
    let held = sqlx::query(statement).bind(id).execute(&mut *tx).await.unwrap();
    assert_eq!(held.rows_affected(), 1, "{statement}");
    let app = api.app.clone();
    let uri = format!("/tasks/{id}");
    let user = user.to_owned();
    let pending =
        tokio::spawn(async move { send(&app, request(method, &uri, &[("x-user-id", user.as_str())], body)).await });
    api.db.wait_for_lock_waiter(Duration::from_secs(30)).await;
    tx.commit().await.unwrap();
    pending.await.unwrap()
}

const DELETE_ROW: &str = "DELETE FROM tasks WHERE id = $1";
const RETITLE_ROW: &str = "UPDATE tasks SET title = 'renamed' WHERE id = $1";

#[tokio::test]
async fn the_owner_racing_a_delete_gets_404_not_403() {
    let api = api().await;
    let alice = api.user("alice").await;

    let id = api.create_id(&alice, json!({"title": "twice"})).await;
    let r = race(&api, DELETE_ROW, id, Method::DELETE, &alice, None).await;
    r.assert_error(StatusCode::NOT_FOUND);

    let id = api.create_id(&alice, json!({"title": "deleted while updated"})).await;
    let r = race(&api, DELETE_ROW, id, Method::PUT, &alice, Some(json!({"status": "completed"}))).await;
    r.assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_write_waiting_on_a_surviving_row_decides_ownership_from_its_newest_version() {
    let api = api().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let id = api.create_id(&alice, json!({"title": "t"})).await;
    // Another user still gets 403 after waiting.
    race(&api, RETITLE_ROW, id, Method::PUT, &bob, Some(json!({"title": "pwned"})))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    race(&api, RETITLE_ROW, id, Method::DELETE, &bob, None).await.assert_error(StatusCode::FORBIDDEN);
    // The owner's update applies on top of the committed one.
    let r = race(&api, RETITLE_ROW, id, Method::PUT, &alice, Some(json!({"status": "completed"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        (r.json["task"]["title"].as_str(), r.json["task"]["status"].as_str()),
        (Some("renamed"), Some("completed"))
    );
    // The owner's delete removes it.
    let r = race(&api, RETITLE_ROW, id, Method::DELETE, &alice, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.call(Method::GET, &format!("/tasks/{id}"), Some(&alice), None).await.assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_foreign_key_violation_other_than_the_users_is_not_a_401() {
    let api = api().await;
    let alice = api.user("alice").await;
    // A constraint added after this code was written: the service must not guess its meaning.
    sqlx::raw_sql(
        "CREATE TABLE allowed_titles (title varchar(200) PRIMARY KEY);
         ALTER TABLE tasks ADD CONSTRAINT tasks_title_fkey FOREIGN KEY (title) REFERENCES allowed_titles (title);",
    )
    .execute(&api.db.pool)
    .await
    .unwrap();
    let r = api.call(Method::POST, "/tasks", Some(&alice), Some(json!({"title": "not allowed"}))).await;
    let message = r.assert_error(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!message.contains("allowed_titles") && !message.contains("fkey"), "no internals: {message}");
    // The users foreign key keeps its meaning: an identity whose user is gone.
    sqlx::query("INSERT INTO allowed_titles VALUES ('ghost')").execute(&api.db.pool).await.unwrap();
    let r = api.call(Method::POST, "/tasks", Some("424242"), Some(json!({"title": "ghost"}))).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn check_constraint_violations_are_400s_named_where_the_query_runs() {
    use task_svc::db;
    use task_svc::error::ApiError;
    use task_svc::task::{NewTask, Priority, Status, TaskChanges};

    let api = api().await;
    let alice: i64 = api.user("alice").await.parse().unwrap();
    let year_10000 = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:30:00-01:00").unwrap().to_utc();
    // A writer that skips task.rs's validation still meets the database's rules.
    let new = |title: &str, due_date| NewTask {
        title: title.to_owned(),
        description: None,
        status: Status::Pending,
        priority: Priority::Medium,
        due_date,
    };
    fn bad_request<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }
    assert!(bad_request(db::insert(&api.db.pool, alice, &new("t", Some(year_10000))).await).contains("due_date"));
    assert!(bad_request(db::insert(&api.db.pool, alice, &new("", None)).await).contains("title"));
    assert!(matches!(db::insert(&api.db.pool, 424_242, &new("t", None)).await, Err(ApiError::UnknownUser)));

    let task = db::insert(&api.db.pool, alice, &new("t", None)).await.unwrap();
    let changes = TaskChanges { due_date: Some(Some(year_10000)), ..TaskChanges::default() };
    assert!(bad_request(db::update(&api.db.pool, task.id, alice, &changes).await).contains("due_date"));
}

/// Copies the migrations older than `version` into a directory of their own.
fn migrations_before(version: &str) -> std::path::PathBuf {
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let dir = std::env::temp_dir().join(format!("task-svc-migrations-{}-{version}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < version {
            std::fs::copy(&path, dir.join(name)).unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn the_due_date_migration_moves_stored_dates_into_rfc3339_range() {
    let db = TestDatabase::empty().await;
    let dir = migrations_before("20261129000010");
    // The migrator reads the files now; the directory is not needed afterwards.
    let before = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    before.run(&db.pool).await.unwrap();
    // Rows as the old parser stored them: less than a day outside years 0000-9999.
    sqlx::raw_sql(
        "INSERT INTO users (username, email, password_hash) VALUES ('alice', 'alice@example.com', 'x');
         INSERT INTO tasks (user_id, title, due_date) VALUES
             (1, 'late',  '10000-01-01 00:30:00+00'),
             (1, 'early', '0002-12-31 23:30:00+00 BC'),
             (1, 'fine',  '2024-01-15 00:00:00+00'),
             (1, 'none',  NULL);",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    platform::db::MIGRATOR.run(&db.pool).await.unwrap();
    let validated: bool =
        sqlx::query_scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'tasks_due_date_range'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(validated);

    let api = api_on(db);
    let r = api.call(Method::GET, "/tasks", Some("1"), None).await;
    let due: HashMap<&str, &Value> =
        r.json["tasks"].as_array().unwrap().iter().map(|t| (t["title"].as_str().unwrap(), &t["due_date"])).collect();
    assert_eq!(due["late"], "9999-12-31T23:59:59.999Z");
    assert_eq!(due["early"], "0000-01-01T00:00:00.000Z");
    assert_eq!(due["fine"], "2024-01-15T00:00:00.000Z");
    assert_eq!(due["none"], &Value::Null);
    // And the database refuses such a value from now on.
    let err = sqlx::query("UPDATE tasks SET due_date = '10000-01-01 00:00:00+00' WHERE title = 'fine'")
        .execute(&api.db.pool)
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().constraint(), Some("tasks_due_date_range"));
}
