//! The guide's Phase 8 (Steps 8.1-8.3), request by request as its curl commands do it,
//! against the front door of a stack started exactly as the run command (scripts/run.sh) starts it
//! (its own PostgreSQL cluster included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use devstack::stack::Stack;
use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_phase_8_through_the_front_door() {
    // No database_url: the stack starts its own throwaway cluster, like the run command.
    let stack = Stack::start(options()).await.expect("the stack starts");
    let alb = stack.url();
    let c = client();

    // Step 8.1: register, then login.
    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/auth/register"),
        None,
        Some(json!({"username": "testuser", "email": "test@example.com", "password": "SecurePass123!"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let user = &r.json["user"];
    assert_eq!(user["username"], "testuser");
    assert_eq!(user["email"], "test@example.com");
    assert!(user["id"].is_i64() && user["created_at"].is_string(), "{user}");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none(), "{user}");

    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/auth/login"),
        None,
        Some(json!({"username": "testuser", "password": "SecurePass123!"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let token = r.json["token"].as_str().expect("a token").to_owned();
    assert_eq!(r.json["user"]["id"], user["id"]);
    assert_eq!(r.json["user"]["username"], "testuser");

    // Step 8.2: create with all fields, list, get, update, delete.
    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/tasks"),
        Some(&token),
        Some(json!({
            "title": "Learn AWS ECS",
            "description": "Complete the ECS implementation guide",
            "status": "in_progress",
            "priority": "high",
            "due_date": "2024-01-15T00:00:00Z"
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let task = r.json["task"].clone();
    let id = task["id"].as_i64().expect("task id");
    assert_eq!(task["user_id"], user["id"]);
    assert_eq!(task["title"], "Learn AWS ECS");
    assert_eq!(task["description"], "Complete the ECS implementation guide");
    assert_eq!(task["status"], "in_progress");
    assert_eq!(task["priority"], "high");
    assert!(task["due_date"].as_str().is_some_and(|d| d.starts_with("2024-01-15T00:00:00")), "{task}");
    assert!(task["created_at"].is_string() && task["updated_at"].is_string(), "{task}");

    let r = call(&c, Method::GET, &format!("{alb}/tasks"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let tasks = r.json["tasks"].as_array().expect("tasks array");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["id"], id);

    let r = call(&c, Method::GET, &format!("{alb}/tasks/{id}"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["task"], task);

    let r =
        call(&c, Method::PUT, &format!("{alb}/tasks/{id}"), Some(&token), Some(json!({"status": "completed"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["task"]["status"], "completed");
    assert_eq!(r.json["task"]["title"], "Learn AWS ECS", "a partial update keeps the other fields");

    // Step 8.3 before the delete, so the second user has a task to be refused: another
    // user's task is 403 for read, update and delete.
    register(&Http::new(&c, &alb), "otheruser").await;
    let other = login(&Http::new(&c, &alb), "otheruser").await;
    call(&c, Method::GET, &format!("{alb}/tasks/{id}"), Some(&other), None).await.assert_error(StatusCode::FORBIDDEN);
    call(&c, Method::PUT, &format!("{alb}/tasks/{id}"), Some(&other), Some(json!({"status": "pending"})))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    call(&c, Method::DELETE, &format!("{alb}/tasks/{id}"), Some(&other), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let r = call(&c, Method::GET, &format!("{alb}/tasks"), Some(&other), None).await;
    assert_eq!(r.json["tasks"], json!([]), "the other user sees none of the first user's tasks");

    let r = call(&c, Method::DELETE, &format!("{alb}/tasks/{id}"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    call(&c, Method::GET, &format!("{alb}/tasks/{id}"), Some(&token), None).await.assert_error(StatusCode::NOT_FOUND);

    // Step 8.3: no token, and an invalid one.
    call(&c, Method::GET, &format!("{alb}/tasks"), None, None).await.assert_error(StatusCode::UNAUTHORIZED);
    call(&c, Method::GET, &format!("{alb}/tasks"), Some("invalid-token"), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);

    // The front door's own routing: health checks pass through, other paths are a JSON 404.
    let r = call(&c, Method::GET, &format!("{alb}/tasks/health"), None, None).await;
    assert_eq!((r.status, r.json["service"].as_str()), (StatusCode::OK, Some("task")));
    let r = call(&c, Method::GET, &format!("{alb}/auth/health"), None, None).await;
    assert_eq!((r.status, r.json["service"].as_str()), (StatusCode::OK, Some("auth")));
    for path in ["/", "/health", "/tasksx", "/authz/login", "/Tasks"] {
        call(&c, Method::GET, &format!("{alb}{path}"), None, None).await.assert_error(StatusCode::NOT_FOUND);
    }

    stack.shutdown().await.expect("clean shutdown");
}
