//! Instance failures, as the ALB's health checks and the gateways' local JWT verification
//! handle them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::TestDatabase;

const NOTICE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_task_svc_dies_leaves_the_rotation_and_comes_back() {
    let db = TestDatabase::new().await;
    let mut stack = start_on(&db.url).await;
    let alb = stack.url();
    let c = client();
    register(&Http::new(&c, &alb), "failover").await;
    let token = login(&Http::new(&c, &alb), "failover").await;

    stack.kill_task_svc(0);
    // The gateway of task 1 is still up and answers /tasks/health with an error: the front
    // door's health check (through the gateway, as the ALB's) takes the task out.
    stack.wait_for_target("task-1", false, NOTICE).await.unwrap();
    let before = target(&stack, "task-1").requests;
    for i in 0..10 {
        let r = call(&c, Method::POST, &format!("{alb}/tasks"), Some(&token), Some(json!({"title": format!("t{i}")})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let r = call(&c, Method::GET, &format!("{alb}/tasks"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    assert_eq!(target(&stack, "task-1").requests, before, "no request went to the unhealthy task");

    stack.restart_task_svc(0).await.unwrap();
    stack.wait_for_target("task-1", true, NOTICE).await.unwrap();
    for _ in 0..6 {
        let r = call(&c, Method::GET, &format!("{alb}/tasks"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["tasks"].as_array().unwrap().len(), 10);
    }
    assert!(target(&stack, "task-1").requests >= before + 3, "task 1 is back in the rotation");

    stack.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_auth_instance_down_issued_tokens_still_work() {
    let db = TestDatabase::new().await;
    let mut stack = start_on(&db.url).await;
    let alb = stack.url();
    let c = client();
    register(&Http::new(&c, &alb), "survivor").await;
    let token = login(&Http::new(&c, &alb), "survivor").await;

    stack.kill_auth(0);
    stack.kill_auth(1);
    // Right after the crash a login may reach a dead instance (502); once the health checks
    // notice, there is no healthy instance left (503). Either way: a JSON error.
    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/auth/login"),
        None,
        Some(json!({"username": "survivor", "password": PASSWORD})),
    )
    .await;
    assert!(matches!(r.status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE), "{r:?}");
    r.assert_error(r.status);
    stack.wait_for_target("auth-1", false, NOTICE).await.unwrap();
    stack.wait_for_target("auth-2", false, NOTICE).await.unwrap();

    // The gateways verify the token themselves: tasks keep working without auth-svc.
    for i in 0..6 {
        let r = call(&c, Method::POST, &format!("{alb}/tasks"), Some(&token), Some(json!({"title": format!("t{i}")})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let id = r.json["task"]["id"].as_i64().unwrap();
        let r = call(&c, Method::GET, &format!("{alb}/tasks/{id}"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    // Both tasks served them.
    assert!(target(&stack, "task-1").requests >= 4 && target(&stack, "task-2").requests >= 4);
    call(&c, Method::GET, &format!("{alb}/tasks"), Some("invalid-token"), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);

    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/auth/login"),
        None,
        Some(json!({"username": "survivor", "password": PASSWORD})),
    )
    .await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    let r = call(
        &c,
        Method::POST,
        &format!("{alb}/auth/register"),
        None,
        Some(json!({"username": "late", "email": "late@example.com", "password": PASSWORD})),
    )
    .await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE);

    // One instance back: logins work again.
    stack.restart_auth(1).await.unwrap();
    stack.wait_for_target("auth-2", true, NOTICE).await.unwrap();
    login(&Http::new(&c, &alb), "survivor").await;

    stack.shutdown().await.expect("clean shutdown");
}
