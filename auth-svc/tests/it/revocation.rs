//! Logout, logout-all, the revocation feed the gateways pull, and the token time rules of
//! `/auth/validate`: the router in-process against a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, Instant};

use auth_svc::{AppState, router};
use axum::Router;
use axum::http::{Method, StatusCode};
use platform::Secret;
use platform::keyring::{Claims, Keyring};
use serde_json::{Value, json};
use testkit::Reply;
use testkit::TestDatabase;
use testkit::api::{request, send};

use crate::harness::SECRET;
use testkit::Api as _;
use testkit::accounts;

struct Api {
    app: Router,
    db: TestDatabase,
}

fn state(db: &TestDatabase) -> AppState {
    crate::harness::task(db, &[("HASH_CONCURRENCY", "2")]).1
}

async fn api() -> Api {
    let db = TestDatabase::new().await;
    Api { app: router(state(&db)), db }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.app.call(method, uri, token, body).await
    }

    /// Registers `name` and returns a fresh token.
    async fn user(&self, name: &str) -> String {
        accounts::register(&self.app, name).await;
        self.login(name).await
    }

    async fn login(&self, name: &str) -> String {
        accounts::login(&self.app, name).await
    }

    async fn validate(&self, token: &str) -> Reply {
        self.call(Method::POST, "/auth/validate", Some(token), None).await
    }

    async fn feed(&self, query: &str) -> Reply {
        self.call(Method::GET, &format!("/internal/revocations{query}"), None, None).await
    }
}

fn assert_refused(r: &Reply, reason: &str) {
    r.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["reason"], reason, "{}", r.json);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn logout_revokes_only_the_presented_token() {
    let api = api().await;
    let token = api.user("leaver").await;
    let other = api.login("leaver").await;
    assert_eq!(api.validate(&token).await.status, StatusCode::OK);

    let r = api.call(Method::POST, "/auth/logout", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    assert_refused(&api.validate(&token).await, "revoked");
    assert_eq!(api.validate(&other).await.status, StatusCode::OK, "the user's other token is untouched");
    let feed = api.feed("").await;
    assert_eq!(feed.status, StatusCode::OK);
    assert_eq!(feed.json["revocations"].as_array().unwrap().len(), 1, "{}", feed.json);
    assert_eq!(feed.json["revocations"][0]["kind"], "token");
}

/// A revoked token is refused by every endpoint that takes a bearer token, with the same 401
/// and reason: a stolen token, once revoked, cannot log its owner out of new sessions.
#[tokio::test]
async fn a_revoked_token_gets_401_revoked_from_every_bearer_endpoint() {
    let api = api().await;
    let logged_out = api.user("victim").await;
    let cut_off = api.login("victim").await;
    assert_eq!(api.call(Method::POST, "/auth/logout", Some(&logged_out), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::POST, "/auth/logout-all", Some(&cut_off), None).await.status, StatusCode::NO_CONTENT);
    let fresh = api.login("victim").await;
    for revoked in [&logged_out, &cut_off] {
        for path in ["/auth/validate", "/auth/logout", "/auth/logout-all"] {
            assert_refused(&api.call(Method::POST, path, Some(revoked), None).await, "revoked");
        }
    }
    assert_eq!(api.validate(&fresh).await.status, StatusCode::OK, "the owner's new session survives");
    assert_eq!(api.feed("").await.json["revocations"].as_array().unwrap().len(), 2, "nothing more was revoked");
}

/// Logout and logout-all share one budget per account (LOGOUT_BURST at once, then
/// LOGOUT_RATE_PER_MIN): 429 with Retry-After and the contract's body; other accounts are not
/// affected, and the refused token stays valid.
#[tokio::test]
async fn logout_and_logout_all_are_throttled_per_account() {
    let db = TestDatabase::new().await;
    let app = router(crate::harness::task(&db, &[("LOGOUT_BURST", "3"), ("LOGOUT_RATE_PER_MIN", "6")]).1);
    let api = Api { app, db };
    let first = api.user("busy").await;
    let mut tokens = vec![first];
    for _ in 0..4 {
        tokens.push(api.login("busy").await);
    }
    for token in &tokens[..3] {
        assert_eq!(api.call(Method::POST, "/auth/logout", Some(token), None).await.status, StatusCode::NO_CONTENT);
    }
    for path in ["/auth/logout", "/auth/logout-all"] {
        let r = api.call(Method::POST, path, Some(&tokens[3]), None).await;
        let message = r.assert_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.json["error"], "Too Many Requests");
        let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&secs), "6 a minute: one every 10 s, got {secs}");
        assert_eq!(message, format!("Too many logout requests for this account, retry in {secs} seconds"));
    }
    assert_eq!(api.validate(&tokens[3]).await.status, StatusCode::OK, "a throttled logout revokes nothing");
    let other = api.user("calm").await;
    assert_eq!(api.call(Method::POST, "/auth/logout", Some(&other), None).await.status, StatusCode::NO_CONTENT);
    let doc = api.call(Method::GET, "/auth/openapi.json", None, None).await.json;
    for path in ["/auth/logout", "/auth/logout-all"] {
        assert!(doc["paths"][path]["post"]["responses"]["429"]["headers"].get("Retry-After").is_some(), "{path}");
    }
}

/// A token is accepted until `exp + leeway` (at most 60 s): its revocation is kept and served
/// to the gateways until then, and dropped only after.
#[tokio::test]
async fn a_revocation_outlives_its_token_by_the_maximum_leeway() {
    let db = TestDatabase::new().await;
    let app = router(crate::harness::task(&db, &[("JWT_LEEWAY_SECS", "60")]).1);
    let api = Api { app, db };
    let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
    let now = chrono::Utc::now().timestamp();
    // Expired 30 s ago: inside the leeway, so still accepted, and logging out revokes it.
    let late = ring.issue(&Claims::new(7, "u", "u@example.com", now - 90, 60)).unwrap();
    assert_eq!(api.validate(&late).await.status, StatusCode::OK);
    assert_eq!(api.call(Method::POST, "/auth/logout", Some(&late), None).await.status, StatusCode::NO_CONTENT);
    // Another revocation whose token expired 61 s ago: past every leeway.
    auth_svc::revocation::revoke_token(&api.db.pool, 7, "gone-for-good", now - 61).await.unwrap();

    let entries = api.feed("").await.json["revocations"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "served while a token may still be accepted: {entries:?}");
    assert_eq!(entries[0]["exp"].as_i64(), Some(now - 30));
    assert_eq!(auth_svc::revocation::prune(&api.db.pool).await.unwrap(), 1, "only the one past exp + 60 s");
    assert_refused(&api.validate(&late).await, "revoked");
}

#[tokio::test]
async fn logout_and_logout_all_need_a_valid_token() {
    let api = api().await;
    for path in ["/auth/logout", "/auth/logout-all"] {
        let r = api.call(Method::POST, path, None, None).await;
        assert_refused(&r, "missing");
        assert_refused(&api.call(Method::POST, path, Some("invalid-token"), None).await, "malformed");
        let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
        let now = chrono::Utc::now().timestamp();
        let expired = ring.issue(&Claims::new(1, "u", "u@example.com", now - 7200, 3600)).unwrap();
        assert_refused(&api.call(Method::POST, path, Some(&expired), None).await, "expired");
    }
    assert_eq!(api.feed("").await.json["revocations"], json!([]), "nothing was revoked");
}

#[tokio::test]
async fn logout_all_revokes_every_earlier_token_and_later_logins_work() {
    let api = api().await;
    let first = api.user("everywhere").await;
    let second = api.login("everywhere").await;
    let bystander = api.user("bystander").await;

    assert_eq!(api.call(Method::POST, "/auth/logout-all", Some(&first), None).await.status, StatusCode::NO_CONTENT);
    assert_refused(&api.validate(&first).await, "revoked");
    assert_refused(&api.validate(&second).await, "revoked");
    assert_eq!(api.validate(&bystander).await.status, StatusCode::OK, "other users are untouched");

    // A token issued right after (even within the same second) is not covered by the cut-off.
    let after = api.login("everywhere").await;
    assert_eq!(api.validate(&after).await.status, StatusCode::OK, "{}", api.validate(&after).await.json);

    let entry = &api.feed("").await.json["revocations"][0];
    assert_eq!(entry["kind"], "user");
    let max_lifetime = 7 * 24 * 3600;
    assert_eq!(entry["exp"].as_i64().unwrap() - entry["issued_before"].as_i64().unwrap(), max_lifetime);
}

#[tokio::test]
async fn the_feed_returns_only_what_follows_the_cursor() {
    let api = api().await;
    let a = api.user("feeda").await;
    let b = api.user("feedb").await;
    let b2 = api.login("feedb").await;
    api.call(Method::POST, "/auth/logout", Some(&a), None).await;
    let page = api.feed("?after=0").await.json;
    assert_eq!(page["revocations"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_i64().unwrap();
    assert_eq!(page["latest"], cursor);

    // Nothing new: an empty page with the same cursor.
    let page = api.feed(&format!("?after={cursor}")).await.json;
    assert_eq!(page["revocations"], json!([]));
    assert_eq!(page["next_cursor"], cursor);

    api.call(Method::POST, "/auth/logout", Some(&b), None).await;
    api.call(Method::POST, "/auth/logout-all", Some(&b2), None).await;
    let page = api.feed(&format!("?after={cursor}&limit=1")).await.json;
    let entries = page["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "limit is honoured");
    assert_eq!(entries[0]["kind"], "token");
    assert!(entries[0]["seq"].as_i64().unwrap() > cursor);
    let page = api.feed(&format!("?after={}", page["next_cursor"])).await.json;
    assert_eq!(page["revocations"][0]["kind"], "user");

    for bad in ["?after=-1", "?limit=0", "?limit=5001", "?after=x", "?since=3"] {
        api.feed(bad).await.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn revocations_survive_a_new_process_on_the_same_database() {
    let api = api().await;
    let token = api.user("durable").await;
    api.call(Method::POST, "/auth/logout", Some(&token), None).await;
    // A fresh state and router on the same database: what a restarted task would have.
    let restarted = router(state(&api.db));
    let r = send(
        &restarted,
        request(Method::POST, "/auth/validate", &[("authorization", &format!("Bearer {token}"))], None),
    )
    .await;
    assert_refused(&r, "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_an_open_writer_so_seq_order_is_commit_order() {
    let api = api().await;
    let token = api.user("ordered").await;
    // Hold the writers' lock in an open transaction, as a slow concurrent logout would.
    let mut tx = api.db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(x'7265766f63617469'::bigint)").execute(&mut *tx).await.unwrap();
    let app = api.app.clone();
    let logout = tokio::spawn(async move {
        send(&app, request(Method::POST, "/auth/logout", &[("authorization", &format!("Bearer {token}"))], None)).await
    });
    // The logout is inside its statement, waiting for the lock the test holds.
    api.db.wait_for_lock_waiter(Duration::from_secs(30)).await;
    assert!(!logout.is_finished(), "the second writer waits for the first to commit");
    let released = Instant::now();
    tx.commit().await.unwrap();
    assert_eq!(logout.await.unwrap().status, StatusCode::NO_CONTENT);
    assert!(released.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn validate_applies_the_lifetime_rules_and_names_the_reason() {
    let api = api().await;
    let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut future = Claims::new(1, "u", "u@example.com", now, 3600);
    future.iat = now + 365 * 86400;
    future.exp = future.iat + 3600;
    assert_refused(&api.validate(&ring.issue(&future).unwrap()).await, "iat_in_future");
    let long = Claims::new(1, "u", "u@example.com", now, 30 * 86400);
    assert_refused(&api.validate(&ring.issue(&long).unwrap()).await, "lifetime_too_long");
    let foreign = Keyring::new(&Secret::new("another-secret-0123456789-abcdefghijkl"), None).unwrap();
    let token = foreign.issue(&Claims::new(1, "u", "u@example.com", now, 3600)).unwrap();
    assert_refused(&api.validate(&token).await, "unknown_kid");
}
