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
