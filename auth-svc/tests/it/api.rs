//! auth-svc handler tests: the router driven in-process against a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use axum::Router;
use axum::http::{Method, StatusCode};
use platform::Secret;
use platform::keyring::{Claims, Keyring};
use platform::metrics::HttpMetrics;
use serde_json::{Value, json};
use testkit::Reply;
use testkit::TestDatabase;
use testkit::api::{request, send};

use crate::harness::SECRET;

struct Api {
    app: Router,
    metrics: HttpMetrics,
    _db: TestDatabase,
}

async fn api_with(extra: &[(&str, &str)]) -> Api {
    let db = TestDatabase::new().await;
    let (app, _, metrics) = crate::harness::task(&db, extra);
    Api { app, metrics, _db: db }
}

async fn api() -> Api {
    api_with(&[]).await
}

impl Api {
    async fn post(&self, uri: &str, body: Value) -> Reply {
        send(&self.app, request(Method::POST, uri, &[], Some(body))).await
    }

    async fn register(&self, username: &str, email: &str, password: &str) -> Reply {
        self.post("/auth/register", json!({"username": username, "email": email, "password": password})).await
    }

    async fn login(&self, username: &str, password: &str) -> Reply {
        self.post("/auth/login", json!({"username": username, "password": password})).await
    }

    async fn validate(&self, authorization: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
        send(&self.app, request(Method::POST, "/auth/validate", &headers, None)).await
    }
}

#[tokio::test]
async fn health_answers_like_the_guide() {
    let api = api().await;
    let r = send(&api.app, request(Method::GET, "/auth/health", &[], None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"status": "healthy", "service": "auth"}));
    assert!(r.header("x-request-id").is_some(), "a request id is created and returned");
}

#[tokio::test]
async fn phase8_register_login_validate() {
    let api = api().await;
    let r = api.register("testuser", "test@example.com", "SecurePass123!").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let user = &r.json["user"];
    assert_eq!(user["username"], "testuser");
    assert_eq!(user["email"], "test@example.com");
    assert!(user["id"].as_i64().unwrap() > 0);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(user.get("password_hash").is_none(), "the hash never leaves the service");

    let r = api.login("testuser", "SecurePass123!").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.header("cache-control"), Some("no-store"), "a token response is never cached");
    assert_eq!(r.json["user"], json!({"id": user["id"], "username": "testuser", "email": "test@example.com"}));
    let token = r.json["token"].as_str().unwrap().to_owned();

    let r = api.validate(Some(&format!("Bearer {token}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["valid"], true);
    assert_eq!(r.json["user"]["user_id"], user["id"]);
    assert_eq!(r.json["user"]["username"], "testuser");
    assert_eq!(r.json["user"]["sub"], user["id"].to_string());
    let claims = &r.json["user"];
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600, "JWT_EXPIRATION default");
}

#[tokio::test]
async fn token_lifetime_follows_jwt_expiration() {
    let api = api_with(&[("JWT_EXPIRATION", "120")]).await;
    api.register("shortlived", "s@example.com", "SecurePass123!").await;
    let token = api.login("shortlived", "SecurePass123!").await.json["token"].as_str().unwrap().to_owned();
    let claims = api.validate(Some(&format!("Bearer {token}"))).await.json["user"].clone();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
}

#[tokio::test]
async fn duplicate_username_or_email_is_409() {
    let api = api().await;
    assert_eq!(api.register("dupe", "dupe@example.com", "SecurePass123!").await.status, StatusCode::CREATED);
    let msg =
        api.register("dupe", "other@example.com", "SecurePass123!").await.assert_error(StatusCode::CONFLICT).to_owned();
    assert_eq!(msg, "Username or email already exists");
    api.register("other", "DUPE@Example.com", "SecurePass123!").await.assert_error(StatusCode::CONFLICT);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let api = api().await;
    api.register("alice", "alice@example.com", "SecurePass123!").await;
    let wrong = api.login("alice", "WrongPass123!").await;
    let unknown = api.login("nobody", "WrongPass123!").await;
    wrong.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.json, unknown.json);
    assert_eq!(wrong.json["message"], "Invalid username or password");
}

#[tokio::test]
async fn registration_validation_rules() {
    let api = api().await;
    let cases = [
        (json!({"email": "a@example.com", "password": "SecurePass123!"}), "username is required"),
        (json!({"username": "abc", "password": "SecurePass123!"}), "email is required"),
        (json!({"username": "abc", "email": "a@example.com"}), "password is required"),
        (json!({"username": "ab", "email": "a@example.com", "password": "SecurePass123!"}), "username must be"),
        (json!({"username": "a b c", "email": "a@example.com", "password": "SecurePass123!"}), "username must be"),
        (json!({"username": "abc", "email": "not-an-email", "password": "SecurePass123!"}), "email must be"),
        (json!({"username": "abc", "email": "a@example.com", "password": "short"}), "password must be 8 to 128"),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "x".repeat(129)}),
            "password must be 8 to 128",
        ),
        (
            json!({"username": "abc", "email": "a@example.com", "password": "SecurePass123!", "role": "admin"}),
            "unknown field",
        ),
        (json!({"username": "abc\u{0}", "email": "a@example.com", "password": "SecurePass123!"}), "NUL"),
        (json!({"username": 42, "email": "a@example.com", "password": "SecurePass123!"}), "invalid type"),
    ];
    for (body, expected) in cases {
        let r = api.post("/auth/register", body.clone()).await;
        let msg = r.assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains(expected), "{body}: {msg}");
    }
    // 128 characters is accepted in full and not truncated: 127 of them do not log in.
    let long = "p".repeat(127) + "q";
    assert_eq!(api.register("longpw", "l@example.com", &long).await.status, StatusCode::CREATED);
    assert_eq!(api.login("longpw", &long).await.status, StatusCode::OK);
    assert_eq!(api.login("longpw", &"p".repeat(127)).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_requires_both_fields() {
    let api = api().await;
    let msg = api.post("/auth/login", json!({"username": "x"})).await.assert_error(StatusCode::BAD_REQUEST).to_owned();
    assert!(msg.contains("Missing credentials"), "{msg}");
}

#[tokio::test]
async fn malformed_oversized_and_untyped_bodies_get_json_errors() {
    let api = api().await;
    let r = send(
        &api.app,
        axum::http::Request::post("/auth/login")
            .header("content-type", "application/json")
            .body("{not json".into())
            .unwrap(),
    )
    .await;
    assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("not valid JSON"));

    let r = send(&api.app, axum::http::Request::post("/auth/login").body("username=x".into()).unwrap()).await;
    assert!(r.assert_error(StatusCode::BAD_REQUEST).contains("Content-Type"));

    let big = json!({"username": "x".repeat(70 * 1024), "password": "SecurePass123!"});
    api.post("/auth/register", big).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let api = api().await;
    send(&api.app, request(Method::GET, "/auth/nope", &[], None)).await.assert_error(StatusCode::NOT_FOUND);
    let r = send(&api.app, request(Method::GET, "/auth/login", &[], None)).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn validate_rejects_missing_invalid_expired_and_foreign_tokens() {
    let api = api().await;
    let r = api.validate(None).await;
    assert_eq!(r.assert_error(StatusCode::UNAUTHORIZED), "No authentication token provided");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        api.validate(Some("Bearer invalid-token")).await.assert_error(StatusCode::UNAUTHORIZED),
        "Invalid token"
    );

    let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
    let now = chrono::Utc::now().timestamp();
    let expired = ring.issue(&Claims::new(1, "u", "u@example.com", now - 7200, 3600)).unwrap();
    assert_eq!(
        api.validate(Some(&format!("Bearer {expired}"))).await.assert_error(StatusCode::UNAUTHORIZED),
        "Token has expired"
    );

    let foreign = Keyring::new(&Secret::new("another-secret-0123456789-abcdefghijkl"), None).unwrap();
    let token = foreign.issue(&Claims::new(1, "u", "u@example.com", now, 3600)).unwrap();
    api.validate(Some(&format!("Bearer {token}"))).await.assert_error(StatusCode::UNAUTHORIZED);
}

/// The gateway refuses identities it cannot forward; /auth/validate (its fallback) applies the
/// same rule, so a validly signed token is never accepted by one and refused by the other.
#[tokio::test]
async fn validate_refuses_identities_the_gateway_cannot_forward_as_malformed() {
    let api = api().await;
    let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut negative = Claims::new(5, "u", "u@example.com", now, 600);
    negative.user_id = -5;
    negative.sub = "-5".into();
    let crlf = Claims::new(5, "u\r\nX-User-Id: 1", "u@example.com", now, 600);
    let mut other_sub = Claims::new(5, "u", "u@example.com", now, 600);
    other_sub.sub = "6".into();
    for claims in [negative, crlf, other_sub] {
        let token = ring.issue(&claims).unwrap();
        let r = api.validate(Some(&format!("Bearer {token}"))).await;
        r.assert_error(StatusCode::UNAUTHORIZED);
        assert_eq!(r.json["reason"], "malformed", "{claims:?}");
    }
}

#[tokio::test]
async fn previous_secret_still_validates_during_rotation() {
    let old = "old-secret-0123456789-abcdefghijklmnopq";
    let api = api_with(&[("JWT_SECRET_PREVIOUS", old)]).await;
    let ring = Keyring::new(&Secret::new(old), None).unwrap();
    let token = ring.issue(&Claims::new(3, "u", "u@example.com", chrono::Utc::now().timestamp(), 600)).unwrap();
    assert_eq!(api.validate(Some(&format!("Bearer {token}"))).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_flood_is_bounded_with_503_and_retry_after() {
    // One hashing slot and no queueing: overlapping logins must be turned away, not piled up.
    // Concurrent attempts count against the account until they succeed: raise its limit so only
    // the hashing bound is under test here (the `throttle` module tests the limit).
    let api =
        api_with(&[("HASH_CONCURRENCY", "1"), ("HASH_QUEUE_TIMEOUT_MS", "0"), ("LOGIN_FAILURE_LIMIT", "1000")]).await;
    assert_eq!(api.register("flood", "f@example.com", "SecurePass123!").await.status, StatusCode::CREATED);
    let (mut ok, mut busy) = (0, 0);
    // Bursts are timing-dependent; a working bound shows within a few.
    for _ in 0..5 {
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let app = api.app.clone();
                tokio::spawn(async move {
                    send(
                        &app,
                        request(
                            Method::POST,
                            "/auth/login",
                            &[],
                            Some(json!({"username": "flood", "password": "SecurePass123!"})),
                        ),
                    )
                    .await
                })
            })
            .collect();
        for a in attempts {
            let r = a.await.unwrap();
            match r.status {
                StatusCode::OK => ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(r.header("retry-after"), Some("1"));
                    r.assert_error(StatusCode::SERVICE_UNAVAILABLE);
                    busy += 1;
                }
                other => panic!("unexpected {other}: {}", r.json),
            }
        }
        if busy > 0 {
            break;
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let api = api().await;
    let r = send(&api.app, request(Method::GET, "/auth/openapi.json", &[], None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.json["paths"].as_object().unwrap();
    for (path, method) in
        [("/auth/health", "get"), ("/auth/register", "post"), ("/auth/login", "post"), ("/auth/validate", "post")]
    {
        assert!(paths[path].get(method).is_some(), "{path} {method} documented");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_class() {
    let api = api().await;
    api.login("ghost", "SecurePass123!").await;
    send(&api.app, request(Method::GET, "/auth/health", &[], None)).await;
    send(&api.app, request(Method::GET, "/no/such/path/123", &[], None)).await;
    let text = api.metrics.render();
    assert!(text.contains(r#"http_requests_total{method="POST",route="/auth/login",status="4xx"} 1"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="GET",route="/auth/health",status="2xx"} 1"#), "{text}");
    assert!(!text.contains("/no/such/path"), "raw paths never become labels");
}
