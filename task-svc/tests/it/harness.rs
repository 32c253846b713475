//! What task-svc's in-process tests share: the router on a fresh PostgreSQL database, with the
//! identity header set by the test as the gateway would set it.

use std::collections::HashMap;

use axum::Router;
use axum::http::{Method, StatusCode};
use platform::metrics::HttpMetrics;
use serde_json::{Value, json};
use task_svc::config::Config;
use task_svc::{AppState, router};
use testkit::{Api as _, Reply, TestDatabase};

/// task-svc's router and its database.
pub struct Api {
    pub app: Router,
    pub db: TestDatabase,
}

/// The router on a new migrated database.
pub async fn api() -> Api {
    api_on(TestDatabase::new().await)
}

/// The router on `db` (e.g. one a test migrated itself).
pub fn api_on(db: TestDatabase) -> Api {
    let env: HashMap<String, String> = [("DATABASE_URL".to_owned(), db.url.clone())].into();
    let config = Config::from_source(&env).expect("valid test config");
    let app = router(AppState::new(config, db.pool.clone(), HttpMetrics::new()));
    Api { app, db }
}

impl Api {
    /// A user row, as auth-svc would have created it; its id as the identity header carries it.
    pub async fn user(&self, name: &str) -> String {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x') RETURNING id")
                .bind(name)
                .bind(format!("{name}@example.com"))
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
        id.to_string()
    }

    /// `method uri` as `user` (the gateway's `x-user-id`; none: an unauthenticated request).
    pub async fn call(&self, method: Method, uri: &str, user: Option<&str>, body: Option<Value>) -> Reply {
        let headers: Vec<(&str, &str)> = user.map(|u| ("x-user-id", u)).into_iter().collect();
        self.app.send(method, uri, &headers, body).await
    }

    /// `POST /tasks` as `user`.
    pub async fn create(&self, user: &str, body: Value) -> Reply {
        self.call(Method::POST, "/tasks", Some(user), Some(body)).await
    }

    /// Creates a task (asserting 201) and returns its id.
    pub async fn create_id(&self, user: &str, body: Value) -> i64 {
        let r = self.create(user, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["task"]["id"].as_i64().unwrap()
    }

    /// [`Api::create_id`] with only a title.
    pub async fn create_titled(&self, user: &str, title: &str) -> i64 {
        self.create_id(user, json!({"title": title})).await
    }
}
