//! What auth-svc's handler tests share: an auth-svc "task" (config from an environment map,
//! state, router) on a test database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use auth_svc::config::Config;
use auth_svc::{AppState, router};
use axum::Router;
use platform::metrics::HttpMetrics;
use testkit::TestDatabase;

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";

/// `DATABASE_URL` of `db`, `JWT_SECRET` = [`SECRET`], then `extra` (which wins).
pub fn env(db: &TestDatabase, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [("DATABASE_URL", db.url.as_str()), ("JWT_SECRET", SECRET)]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    env
}

/// One auth-svc task on `db`: its own hasher, memory and metrics, as a separate ECS task has.
pub fn task(db: &TestDatabase, extra: &[(&str, &str)]) -> (Router, AppState, HttpMetrics) {
    let config = Config::from_source(&env(db, extra)).expect("valid test config");
    let metrics = HttpMetrics::new();
    let state = AppState::new(config, db.pool.clone(), metrics.clone());
    (router(state.clone()), state, metrics)
}

/// `POST /auth/api-keys` with `token` and `body`.
pub async fn create_key(app: &Router, token: &str, body: serde_json::Value) -> testkit::Reply {
    use testkit::Api as _;
    app.call(axum::http::Method::POST, "/auth/api-keys", Some(token), Some(body)).await
}

/// A new key of the user of `token` with `scopes`: (client_id, client_secret, id).
pub async fn new_key(app: &Router, token: &str, scopes: &[&str]) -> (String, String, String) {
    let r = create_key(app, token, serde_json::json!({"name": "test key", "scopes": scopes})).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.raw));
    let key = &r.json["api_key"];
    let text = |f: &str| key[f].as_str().unwrap().to_owned();
    (text("client_id"), text("client_secret"), text("id"))
}

/// `POST /auth/token` with a form body (`pairs`, form-urlencoded) and `headers`.
pub async fn token_request(app: &Router, headers: &[(&str, &str)], pairs: &[(&str, &str)]) -> testkit::Reply {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let mut builder = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri("/auth/token")
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    testkit::api::send(app, builder.body(axum::body::Body::from(body)).unwrap()).await
}

/// `Authorization: Basic` for `client_id` and `client_secret` (RFC 6749 §2.3.1).
pub fn basic(client_id: &str, client_secret: &str) -> String {
    use base64::Engine as _;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// Exchanges a key by HTTP Basic, asserting 200: the access token.
pub async fn exchange(app: &Router, client_id: &str, client_secret: &str) -> String {
    let auth = basic(client_id, client_secret);
    let r = token_request(app, &[("authorization", &auth)], &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", String::from_utf8_lossy(&r.raw));
    r.json["access_token"].as_str().unwrap().to_owned()
}
