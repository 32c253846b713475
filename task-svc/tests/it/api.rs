//! task-svc handler tests: the router driven in-process against a fresh PostgreSQL database,
//! with the identity header set by the test as the gateway would set it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use platform::metrics::HttpMetrics;
use serde_json::{Value, json};
use task_svc::config::Config;
use task_svc::{AppState, router};
use testkit::TestDatabase;
use testkit::api::{request, send};

use crate::harness::{Api, api};

#[tokio::test]
async fn health_is_public_and_answers_like_the_guide() {
    let api = api().await;
    let r = api.call(Method::GET, "/tasks/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"status": "healthy", "service": "task"}));
}

#[tokio::test]
async fn phase8_create_list_get_update_delete() {
    let api = api().await;
    let alice = api.user("alice").await;
    let r = api
        .create(
            &alice,
            json!({
                "title": "Learn AWS ECS",
                "description": "Complete the ECS implementation guide",
                "status": "in_progress",
                "priority": "high",
                "due_date": "2024-01-15T00:00:00Z"
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let task = &r.json["task"];
    assert_eq!(task["user_id"].to_string(), alice);
    assert_eq!(task["title"], "Learn AWS ECS");
    assert_eq!(task["description"], "Complete the ECS implementation guide");
    assert_eq!(task["status"], "in_progress");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["due_date"], "2024-01-15T00:00:00.000Z");
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
    let id = task["id"].as_i64().unwrap();

    let r = api.call(Method::GET, "/tasks", Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["tasks"][0]["id"], id);
    assert_eq!(r.json["next_cursor"], Value::Null);

    let r = api.call(Method::GET, &format!("/tasks/{id}"), Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["task"]["title"], "Learn AWS ECS");

    let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"status": "completed"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["task"]["status"], "completed");
    // Absent fields are unchanged.
    assert_eq!(r.json["task"]["title"], "Learn AWS ECS");
    assert_eq!(r.json["task"]["priority"], "high");
    assert_eq!(r.json["task"]["description"], "Complete the ECS implementation guide");
    assert!(r.json["task"]["updated_at"].as_str() > task["updated_at"].as_str(), "updated_at moves on update");

    let r = api.call(Method::DELETE, &format!("/tasks/{id}"), Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.raw.is_empty());
    api.call(Method::GET, &format!("/tasks/{id}"), Some(&alice), None).await.assert_error(StatusCode::NOT_FOUND);
    api.call(Method::DELETE, &format!("/tasks/{id}"), Some(&alice), None).await.assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn no_or_invalid_identity_is_401_fail_closed() {
    let api = api().await;
    let alice = api.user("alice").await;
    let id = api.create_titled(&alice, "mine").await;
    for (method, uri) in [
        (Method::GET, "/tasks".to_owned()),
        (Method::POST, "/tasks".to_owned()),
        (Method::GET, format!("/tasks/{id}")),
        (Method::PUT, format!("/tasks/{id}")),
        (Method::DELETE, format!("/tasks/{id}")),
    ] {
        let r = api.call(method.clone(), &uri, None, Some(json!({"title": "x"}))).await;
        r.assert_error(StatusCode::UNAUTHORIZED);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{method} {uri}");
        assert_eq!(r.json["reason"], "no_identity", "{method} {uri}");
    }
    for bad in ["", "abc", "0", "-3", "1.5", " 1", "99999999999999999999"] {
        let r = send(&api.app, request(Method::GET, "/tasks", &[("x-user-id", bad)], None)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "x-user-id {bad:?}");
    }
    // Two identity headers are ambiguous: refused.
    let r = send(&api.app, request(Method::GET, "/tasks", &[("x-user-id", &alice), ("x-user-id", "999")], None)).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
    // An identity for a user that does not exist cannot create tasks, and is told why.
    let ghost = api.create("424242", json!({"title": "ghost"})).await;
    ghost.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(ghost.json["reason"], "unknown_user", "{:?}", ghost.json);
    assert_eq!(ghost.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn another_users_task_is_403_and_stays_untouched() {
    let api = api().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let id = api.create_titled(&alice, "alice's").await;
    let uri = format!("/tasks/{id}");
    api.call(Method::GET, &uri, Some(&bob), None).await.assert_error(StatusCode::FORBIDDEN);
    api.call(Method::PUT, &uri, Some(&bob), Some(json!({"title": "pwned"}))).await.assert_error(StatusCode::FORBIDDEN);
    api.call(Method::DELETE, &uri, Some(&bob), None).await.assert_error(StatusCode::FORBIDDEN);
    let r = api.call(Method::GET, &uri, Some(&alice), None).await;
    assert_eq!(r.json["task"]["title"], "alice's");
    let r = api.call(Method::GET, "/tasks", Some(&bob), None).await;
    assert_eq!(r.json["tasks"], json!([]), "bob's list does not show alice's task");
}

#[tokio::test]
async fn validation_rules_give_400_with_a_reason() {
    let api = api().await;
    let alice = api.user("alice").await;
    let cases = [
        (json!({}), "Title is required"),
        (json!({"title": ""}), "blank"),
        (json!({"title": "   "}), "blank"),
        (json!({"title": "t".repeat(201)}), "at most 200"),
        (json!({"title": "a\u{0}b"}), "NUL"),
        (json!({"title": "t", "description": "d".repeat(10_001)}), "at most 10000"),
        (json!({"title": "t", "description": "\u{0}"}), "NUL"),
        (json!({"title": "t", "status": "done"}), "unknown variant"),
        (json!({"title": "t", "priority": "urgent"}), "unknown variant"),
        (json!({"title": "t", "due_date": "next week"}), "due_date"),
        (json!({"title": "t", "due_date": "2024-02-30"}), "due_date"),
        (json!({"title": "t", "colour": "red"}), "unknown field"),
        (json!({"title": "t", "id": 7}), "set by the server"),
        (json!({"title": "t", "user_id": 7}), "set by the server"),
        (json!({"title": "t", "created_at": "2024-01-01T00:00:00Z"}), "set by the server"),
        (json!({"title": ["t"]}), "invalid type"),
        (json!(["title"]), "Invalid request body"),
    ];
    for (body, expected) in cases {
        let r = api.create(&alice, body.clone()).await;
        let msg = r.assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains(expected), "{body}: {msg}");
    }
    let id = api.create_titled(&alice, "t").await;
    let uri = format!("/tasks/{id}");
    for (body, expected) in [
        (json!({}), "at least one field"),
        (json!({"title": null}), "cannot be null"),
        (json!({"status": null}), "cannot be null"),
        (json!({"status": "archived"}), "unknown variant"),
        (json!({"updated_at": "2024-01-01T00:00:00Z"}), "set by the server"),
    ] {
        let r = api.call(Method::PUT, &uri, Some(&alice), Some(body.clone())).await;
        assert!(r.assert_error(StatusCode::BAD_REQUEST).contains(expected), "{body}");
    }
    assert_eq!(api.call(Method::GET, "/tasks", Some(&alice), None).await.json["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn update_can_clear_nullable_fields_and_keeps_the_rest() {
    let api = api().await;
    let alice = api.user("alice").await;
    let r = api.create(&alice, json!({"title": "t", "description": "d", "due_date": "2024-01-15"})).await;
    let id = r.json["task"]["id"].as_i64().unwrap();
    assert_eq!(r.json["task"]["due_date"], "2024-01-15T00:00:00.000Z");
    let r = api
        .call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"description": null, "priority": "low"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["task"]["description"], Value::Null);
    assert_eq!(r.json["task"]["priority"], "low");
    assert_eq!(r.json["task"]["due_date"], "2024-01-15T00:00:00.000Z");
    let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"due_date": null}))).await;
    assert_eq!(r.json["task"]["due_date"], Value::Null);
    assert_eq!(r.json["task"]["title"], "t");
}

#[tokio::test]
async fn bad_ids_are_400_or_404_never_500() {
    let api = api().await;
    let alice = api.user("alice").await;
    for (id, status) in [
        ("abc", StatusCode::BAD_REQUEST),
        ("-1", StatusCode::BAD_REQUEST),
        ("1e3", StatusCode::BAD_REQUEST),
        ("%20", StatusCode::BAD_REQUEST),
        ("0", StatusCode::NOT_FOUND),
        ("123456789", StatusCode::NOT_FOUND),
        ("9223372036854775807", StatusCode::NOT_FOUND),
        ("99999999999999999999999999999999", StatusCode::NOT_FOUND),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let body = (method == Method::PUT).then(|| json!({"title": "x"}));
            let r = api.call(method.clone(), &format!("/tasks/{id}"), Some(&alice), body).await;
            r.assert_error(status);
        }
    }
}

#[tokio::test]
async fn malformed_oversized_and_mistyped_bodies_get_json_errors() {
    let api = api().await;
    let alice = api.user("alice").await;
    let raw = |body: &'static str, content_type: &'static str| {
        axum::http::Request::post("/tasks")
            .header("x-user-id", alice.as_str())
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let r = send(&api.app, raw("{\"title\": ", "application/json")).await;
    assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("not valid JSON"));
    let r = send(&api.app, raw("title=x", "application/x-www-form-urlencoded")).await;
    assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("Content-Type"));
    let r = api.create(&alice, json!({"title": "t", "description": "x".repeat(65 * 1024)})).await;
    r.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json["reason"], "body_too_large", "the edge's reason for the same cause: {}", r.json);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let api = api().await;
    let alice = api.user("alice").await;
    api.call(Method::GET, "/tasks/1/comments", Some(&alice), None).await.assert_error(StatusCode::NOT_FOUND);
    let r = api.call(Method::PATCH, "/tasks/1", Some(&alice), None).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    let allow = r.header("allow").unwrap();
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
}

#[tokio::test]
async fn listing_is_paginated_newest_first_and_filterable() {
    let api = api().await;
    let alice = api.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let status = if i % 5 == 0 { "completed" } else { "pending" };
        let r = api.create(&alice, json!({"title": format!("t{i}"), "status": status, "priority": "low"})).await;
        ids.push(r.json["task"]["id"].as_i64().unwrap());
    }
    ids.reverse();

    let first = api.call(Method::GET, "/tasks", Some(&alice), None).await;
    let page1: Vec<i64> = first.json["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(page1, ids[..20], "default page of 20, newest first");
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let second = api.call(Method::GET, &format!("/tasks?cursor={cursor}"), Some(&alice), None).await;
    let page2: Vec<i64> = second.json["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(page2, ids[20..]);
    assert_eq!(second.json["next_cursor"], Value::Null);

    let r = api.call(Method::GET, "/tasks?limit=7", Some(&alice), None).await;
    assert_eq!(r.json["tasks"].as_array().unwrap().len(), 7);
    let r = api.call(Method::GET, "/tasks?status=completed", Some(&alice), None).await;
    let tasks = r.json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    assert!(tasks.iter().all(|t| t["status"] == "completed"));
    let r = api.call(Method::GET, "/tasks?priority=high", Some(&alice), None).await;
    assert_eq!(r.json["tasks"], json!([]));

    for (query, expected) in [
        ("limit=0", "limit must be between 1 and 100"),
        ("limit=101", "limit must be between 1 and 100"),
        ("limit=ten", "Invalid query string: `limit`: invalid digit found in string"),
        ("limit=1&limit=2", "Invalid query string: duplicate field `limit`"),
        ("status=done", "Invalid query string: `status`: unknown variant `done`"),
        ("cursor=zzz", "Invalid cursor"),
        ("sort=asc", "Invalid query string: unknown field `sort`, expected one of"),
        ("limit%3A%20x=1", "Invalid query string: unknown field `limit: x`"),
    ] {
        let r = api.call(Method::GET, &format!("/tasks?{query}"), Some(&alice), None).await;
        let message = r.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains(expected), "{query}: {message}");
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let api = api().await;
    let r = api.call(Method::GET, "/tasks/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = r.json["paths"].as_object().unwrap();
    for (path, methods) in
        [("/tasks/health", &["get"][..]), ("/tasks", &["get", "post"]), ("/tasks/{id}", &["get", "put", "delete"])]
    {
        for m in methods {
            assert!(paths[path].get(*m).is_some(), "{path} {m} documented");
        }
    }
}

/// A router whose pool is built from the service's own DB settings (statement timeout included).
async fn api_with_env(extra: &[(&str, &str)]) -> Api {
    let db = TestDatabase::new().await;
    let mut env: HashMap<String, String> = [("DATABASE_URL".to_owned(), db.url.clone())].into();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let config = Config::from_source(&env).expect("valid test config");
    let pool = config.db.pool();
    let app = router(AppState::new(config, pool, HttpMetrics::new()));
    Api { app, db }
}

/// Holds a row lock on task `id` until the returned transaction ends.
async fn lock_task(api: &Api, id: i64) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = api.db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await.unwrap();
    tx
}

#[tokio::test]
async fn a_statement_stuck_past_the_statement_timeout_is_503() {
    let api = api_with_env(&[("DB_STATEMENT_TIMEOUT_SECS", "1"), ("REQUEST_TIMEOUT_SECS", "30")]).await;
    let alice = api.user("alice").await;
    let id = api.create_titled(&alice, "locked").await;
    let _lock = lock_task(&api, id).await;
    let started = std::time::Instant::now();
    let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"title": "x"}))).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_request_past_the_request_timeout_is_503() {
    let api = api_with_env(&[("DB_STATEMENT_TIMEOUT_SECS", "30"), ("REQUEST_TIMEOUT_SECS", "1")]).await;
    let alice = api.user("alice").await;
    let id = api.create_titled(&alice, "locked").await;
    let lock = lock_task(&api, id).await;
    let r = api.call(Method::PUT, &format!("/tasks/{id}"), Some(&alice), Some(json!({"title": "x"}))).await;
    assert!(r.assert_error(StatusCode::SERVICE_UNAVAILABLE).contains("timed out"));
    lock.rollback().await.unwrap();
    // The timed-out request did not poison the pool: the service answers normally again.
    let r = api.call(Method::GET, &format!("/tasks/{id}"), Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
}
