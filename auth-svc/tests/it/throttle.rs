//! Login and registration throttling, driven through the router against a fresh PostgreSQL
//! database: the per-account failure limit, the per-client limit, and the checks registration
//! makes before it hashes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use auth_svc::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode};
use platform::metrics::HttpMetrics;
use serde_json::{Value, json};
use testkit::Reply;
use testkit::TestDatabase;
use testkit::api::{request, send};

use crate::harness::task;
use testkit::accounts::PASSWORD;

struct Svc {
    app: Router,
    /// A clone of the router's state: the hasher's job count, the pool, housekeeping.
    state: AppState,
    metrics: HttpMetrics,
    db: TestDatabase,
}

async fn svc(extra: &[(&str, &str)]) -> Svc {
    let db = TestDatabase::new().await;
    let (app, state, metrics) = task(&db, extra);
    Svc { app, state, metrics, db }
}

async fn post(app: &Router, uri: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    send(app, request(Method::POST, uri, headers, Some(body))).await
}

impl Svc {
    async fn register(&self, username: &str, email: &str) -> Reply {
        post(&self.app, "/auth/register", &[], json!({"username": username, "email": email, "password": PASSWORD}))
            .await
    }

    async fn login(&self, username: &str, password: &str) -> Reply {
        post(&self.app, "/auth/login", &[], json!({"username": username, "password": password})).await
    }

    fn throttled(&self, scope: &str) -> u64 {
        counter(&self.metrics, scope)
    }

    async fn failures(&self, key: &str) -> Option<i32> {
        sqlx::query_scalar("SELECT failures FROM login_failures WHERE username = $1")
            .bind(key)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }
}

fn counter(metrics: &HttpMetrics, scope: &str) -> u64 {
    let series = format!("auth_login_throttled_total{{scope=\"{scope}\"}} ");
    let text = metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Asserts a 429 with the contract's body and a `Retry-After` of 1..=`max` seconds; returns it.
fn assert_throttled(r: &Reply, max: u64) -> u64 {
    let message = r.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert!(message.starts_with("Too many"), "{message}");
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().expect("Retry-After is whole seconds");
    assert!((1..=max).contains(&secs), "Retry-After {secs} not in 1..={max}");
    assert!(message.contains(&format!("retry in {secs} seconds")), "{message}");
    secs
}

#[tokio::test]
async fn failed_logins_beyond_the_limit_get_429_with_retry_after_before_any_hashing() {
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "3")]).await;
    assert_eq!(s.register("alice", "alice@example.com").await.status, StatusCode::CREATED);
    for _ in 0..3 {
        s.login("alice", "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    let hashes = s.state.hasher.jobs_started();
    let r = s.login("alice", "WrongPass123!").await;
    assert_throttled(&r, 900);
    assert_eq!(r.json["error"], "Too Many Requests");
    // The right password does not get through either: the limit is decided before hashing.
    assert_throttled(&s.login("alice", PASSWORD).await, 900);
    assert_eq!(s.state.hasher.jobs_started(), hashes, "a throttled login hashes nothing");
    assert_eq!(s.throttled("account"), 2);
    assert_eq!(s.throttled("client"), 0);
    assert_eq!(s.failures("alice").await, Some(4), "the count stops at limit + 1");
}

#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "3")]).await;
    s.register("bob", "bob@example.com").await;
    for _ in 0..2 {
        s.login("bob", "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.login("bob", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(s.failures("bob").await, None, "success deletes the count");
    // Without the reset this would be the fourth and fifth attempt of the window.
    for _ in 0..2 {
        s.login("bob", "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.login("bob", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_limit_allows_again_once_the_window_is_over() {
    // Two hashes must fit in the window even on a loaded machine; no lockout outlives it.
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "2"), ("LOGIN_FAILURE_WINDOW_SECS", "4")]).await;
    s.register("carol", "carol@example.com").await;
    for _ in 0..2 {
        s.login("carol", "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    let wait = assert_throttled(&s.login("carol", PASSWORD).await, 4);
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let r = s.login("carol", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

/// The body with the seconds taken out (they may differ by one between two requests).
fn without_digits(v: &Value) -> String {
    v.to_string().chars().filter(|c| !c.is_ascii_digit()).collect()
}

#[tokio::test]
async fn unknown_and_existing_usernames_are_counted_and_refused_alike() {
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "2")]).await;
    s.register("dave", "dave@example.com").await;
    let mut answers = Vec::new();
    // Case variants are one account, and one key for an unknown name too.
    for names in [["dave", "DAVE", "Dave"], ["nobody", "NoBody", "NOBODY"]] {
        let first = s.login(names[0], "WrongPass123!").await;
        let second = s.login(names[1], "WrongPass123!").await;
        let third = s.login(names[2], "WrongPass123!").await;
        first.assert_error(StatusCode::UNAUTHORIZED);
        assert_eq!(first.json, second.json);
        assert_throttled(&third, 900);
        answers.push((first, third));
    }
    let ((known_401, known_429), (unknown_401, unknown_429)) = (&answers[0], &answers[1]);
    assert_eq!(known_401.json, unknown_401.json);
    assert_eq!(known_429.status, unknown_429.status);
    assert_eq!(without_digits(&known_429.json), without_digits(&unknown_429.json));
    assert_eq!(s.failures("dave").await, Some(3));
    assert_eq!(s.failures("nobody").await, Some(3));
    assert_eq!(s.throttled("account"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_on_two_tasks_never_get_more_than_the_limit_of_hashes() {
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "5"), ("CLIENT_RATE_PER_MIN", "off")]).await;
    let (other_app, _, other_metrics) = task(&s.db, &[("LOGIN_FAILURE_LIMIT", "5"), ("CLIENT_RATE_PER_MIN", "off")]);
    s.register("erin", "erin@example.com").await;
    let attempts: Vec<_> = (0..24)
        .map(|i| {
            let app = if i % 2 == 0 { s.app.clone() } else { other_app.clone() };
            tokio::spawn(async move {
                post(&app, "/auth/login", &[], json!({"username": "Erin", "password": "WrongPass123!"})).await.status
            })
        })
        .collect();
    let mut statuses: HashMap<u16, u32> = HashMap::new();
    for a in attempts {
        *statuses.entry(a.await.unwrap().as_u16()).or_default() += 1;
    }
    println!("24 concurrent wrong logins on two tasks, limit 5: {statuses:?}");
    assert_eq!(statuses.get(&401), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&19), "{statuses:?}");
    assert_eq!(s.throttled("account") + counter(&other_metrics, "account"), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_turned_away_by_a_full_hashing_pool_are_not_counted() {
    let s = svc(&[("HASH_CONCURRENCY", "1"), ("HASH_QUEUE_TIMEOUT_MS", "0"), ("LOGIN_FAILURE_LIMIT", "100")]).await;
    s.register("frank", "frank@example.com").await;
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let app = s.app.clone();
            tokio::spawn(async move {
                post(&app, "/auth/login", &[], json!({"username": "frank", "password": "WrongPass123!"})).await.status
            })
        })
        .collect();
    let mut unauthorized = 0;
    for a in attempts {
        match a.await.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(unauthorized >= 1);
    assert_eq!(s.failures("frank").await, Some(unauthorized), "only checked passwords count");
}

/// A login with a missing password: 400 without hashing, but it still spends the source's budget.
async fn cheap_login(app: &Router, headers: &[(&str, &str)]) -> Reply {
    post(app, "/auth/login", headers, json!({"username": "someone"})).await
}

#[tokio::test]
async fn the_client_limit_keys_on_the_last_forwarded_hop() {
    let s = svc(&[("CLIENT_RATE_PER_MIN", "1"), ("CLIENT_BURST", "3")]).await;
    for i in 0..3 {
        // The client varies what it sends; the ALB's entry (the last one) stays.
        let xff = format!("10.9.8.{i}, 192.0.2.{i}, 203.0.113.7");
        cheap_login(&s.app, &[("x-forwarded-for", &xff)]).await.assert_error(StatusCode::BAD_REQUEST);
    }
    for spoof in ["203.0.113.8, 203.0.113.7", "1.2.3.4,203.0.113.7", "2001:db8::1, 203.0.113.7"] {
        assert_throttled(&cheap_login(&s.app, &[("x-forwarded-for", spoof)]).await, 60);
    }
    // Register draws on the same budget.
    let r = post(
        &s.app,
        "/auth/register",
        &[("x-forwarded-for", "203.0.113.7")],
        json!({"username": "gina", "email": "gina@example.com", "password": PASSWORD}),
    )
    .await;
    assert!(assert_throttled(&r, 60) > 1, "one request a minute: the wait is most of a minute");
    assert!(r.json["message"].as_str().unwrap().contains("from this address"), "{}", r.json);
    // Another last hop is another source.
    cheap_login(&s.app, &[("x-forwarded-for", "203.0.113.7, 203.0.113.9")]).await.assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(s.throttled("client"), 4);
    assert_eq!(s.throttled("account"), 0);
}

#[tokio::test]
async fn without_the_header_the_tcp_peer_is_the_source() {
    let s = svc(&[("CLIENT_RATE_PER_MIN", "1"), ("CLIENT_BURST", "2")]).await;
    let from = |peer: &str, xff: Option<&str>| {
        let headers: Vec<(&str, &str)> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let mut req = request(Method::POST, "/auth/login", &headers, Some(json!({"username": "someone"})));
        req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    };
    for port in [1000, 1001] {
        send(&s.app, from(&format!("192.0.2.1:{port}"), None)).await.assert_error(StatusCode::BAD_REQUEST);
    }
    assert_throttled(&send(&s.app, from("192.0.2.1:1002", None)).await, 60);
    send(&s.app, from("192.0.2.2:1000", None)).await.assert_error(StatusCode::BAD_REQUEST);
    // Behind the ALB the peer is the load balancer: the appended address decides.
    send(&s.app, from("192.0.2.1:1003", Some("198.51.100.5"))).await.assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn registration_refuses_a_taken_name_or_email_before_hashing() {
    let s = svc(&[]).await;
    let before = s.state.hasher.jobs_started();
    assert_eq!(s.register("Harry", "harry@example.com").await.status, StatusCode::CREATED);
    assert_eq!(s.state.hasher.jobs_started(), before + 1, "a registration hashes once");
    for (username, email) in
        [("harry", "other@example.com"), ("HARRY", "x@example.com"), ("harold", "Harry@Example.COM")]
    {
        let r = s.register(username, email).await;
        assert_eq!(r.assert_error(StatusCode::CONFLICT), "Username or email already exists");
    }
    assert_eq!(s.state.hasher.jobs_started(), before + 1, "taken names and emails are refused without hashing");
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case_and_login_ignores_case() {
    let s = svc(&[]).await;
    assert_eq!(s.register("Ivy.Lee", "ivy@example.com").await.status, StatusCode::CREATED);
    // The race the pre-check cannot see is decided by the unique index: 409 from the insert.
    let err =
        sqlx::query("INSERT INTO users (username, email, password_hash) VALUES ('IVY.LEE', 'i2@example.com', 'x')")
            .execute(&s.db.pool)
            .await
            .unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("23505"));
    let r = s.login("ivy.lee", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["user"]["username"], "Ivy.Lee", "the stored spelling is the account's name");
}

/// Fullwidth letters and case are other spellings of one name: they neither register a second
/// account nor get a limit of their own, and they log in to the one account.
#[tokio::test]
async fn every_spelling_of_a_name_is_one_account_and_one_throttle_key() {
    let s = svc(&[("LOGIN_FAILURE_LIMIT", "3")]).await;
    assert_eq!(s.register("alice", "alice@example.com").await.status, StatusCode::CREATED);
    s.register("Alice", "alice2@example.com").await.assert_error(StatusCode::CONFLICT);
    // Not a name an account can have (ASCII only), so never a second account.
    s.register("ＡＬＩＣＥ", "alice3@example.com").await.assert_error(StatusCode::BAD_REQUEST);
    for spelling in ["ＡＬＩＣＥ", "ａｌｉｃｅ", "Alice"] {
        s.login(spelling, "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.failures("alice").await, Some(3), "one count for every spelling");
    assert_eq!(s.failures("ａｌｉｃｅ").await, None, "no count of its own");
    assert_throttled(&s.login("alice", PASSWORD).await, 900);

    let s = svc(&[]).await;
    s.register("alice", "alice@example.com").await;
    for spelling in ["ＡＬＩＣＥ", "alice", "Alice", "ａｌｉｃｅ"] {
        let r = s.login(spelling, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{spelling}: {}", r.json);
        assert_eq!(r.json["user"]["username"], "alice");
    }
}

#[tokio::test]
async fn housekeeping_deletes_only_expired_counts() {
    let s = svc(&[("LOGIN_FAILURE_WINDOW_SECS", "60")]).await;
    for name in ["old-guess", "new-guess"] {
        s.login(name, "WrongPass123!").await.assert_error(StatusCode::UNAUTHORIZED);
    }
    sqlx::query("UPDATE login_failures SET window_start = now() - interval '61 seconds' WHERE username = 'old-guess'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    s.state.throttle.housekeeping(&s.db.pool).await;
    assert_eq!(s.failures("old-guess").await, None);
    assert_eq!(s.failures("new-guess").await, Some(1));
}

#[tokio::test]
async fn the_openapi_document_lists_429_for_both_hashing_endpoints() {
    let s = svc(&[]).await;
    let doc = send(&s.app, request(Method::GET, "/auth/openapi.json", &[], None)).await.json;
    for path in ["/auth/login", "/auth/register"] {
        let r = &doc["paths"][path]["post"]["responses"]["429"];
        assert!(r["description"].as_str().is_some_and(|d| d.contains("Retry-After")), "{path}: {r}");
        assert!(r["headers"].get("Retry-After").is_some(), "{path}: {r}");
    }
}
