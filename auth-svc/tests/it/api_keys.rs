//! `POST/GET /auth/api-keys`, `DELETE /auth/api-keys/{id}`: creation, listing, ownership, the
//! per-user limit, login tokens only, and revocation (the feed's `api_key` entry,
//! `/auth/validate` refusing the key's tokens): the router in-process on a fresh database.

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::accounts::sign_up;
use testkit::{Api as _, Reply, TestDatabase};

use crate::harness::{create_key, exchange, new_key, task};

/// An auth-svc whose per-account limit on key changes is out of the way (tested on its own).
async fn app() -> (Router, TestDatabase) {
    let db = TestDatabase::new().await;
    let (app, _, _) = task(&db, &[("HASH_CONCURRENCY", "2"), ("API_KEY_BURST", "1000")]);
    (app, db)
}

async fn list(app: &Router, token: &str) -> Reply {
    app.call(Method::GET, "/auth/api-keys", Some(token), None).await
}

async fn delete(app: &Router, token: &str, id: &str) -> Reply {
    app.call(Method::DELETE, &format!("/auth/api-keys/{id}"), Some(token), None).await
}

fn ids(r: &Reply) -> Vec<String> {
    r.json["api_keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_owned()).collect()
}

fn seconds_until(rfc3339: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap()).unwrap();
    at.timestamp() - chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_created_key_is_shown_once_listed_without_its_secret_and_deleted_by_its_owner_only() {
    let (app, _db) = app().await;
    let (alice, _) = sign_up(&app, "alice").await;
    let (mallory, _) = sign_up(&app, "mallory").await;

    let body = json!({"name": "nightly report", "scopes": ["tasks:read"], "expires_in_days": 30});
    let r = create_key(&app, &alice, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // The secret is in this body only: no cache may keep it.
    assert_eq!((r.header("cache-control"), r.header("pragma")), (Some("no-store"), Some("no-cache")));
    let key = r.json["api_key"].clone();
    let fields: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        ["client_id", "client_secret", "created_at", "expires_at", "id", "last_used_at", "name", "scopes"],
        "{key}"
    );
    let (id, client_id, secret) =
        (key["id"].as_str().unwrap(), key["client_id"].as_str().unwrap(), key["client_secret"].as_str().unwrap());
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{id}");
    assert!(client_id.starts_with("tmk_") && client_id.len() == 26, "{client_id}");
    assert!(secret.starts_with("tms_") && secret.len() == 47, "{secret}");
    assert_eq!((key["name"].clone(), key["scopes"].clone()), (json!("nightly report"), json!(["tasks:read"])));
    assert_eq!(key["last_used_at"], Value::Null);
    assert!((30 * 86400 - 60..=30 * 86400).contains(&seconds_until(&key["expires_at"])), "{key}");
    assert!(key["created_at"].as_str().unwrap().ends_with('Z'));
    let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM api_keys WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(&_db.pool)
        .await
        .unwrap();
    assert_eq!(hash.len(), 32, "only the SHA-256 of the secret is stored");

    let listed = list(&app, &alice).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(ids(&listed), [id]);
    let raw = String::from_utf8_lossy(&listed.raw);
    assert!(!raw.contains(secret) && !raw.contains("secret"), "never the secret or its hash: {raw}");
    let mut without_secret = key.clone();
    without_secret.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(listed.json["api_keys"][0], without_secret);

    // Another user sees none of it and cannot delete it: 404, as for an unknown id.
    assert_eq!(list(&app, &mallory).await.json, json!({"api_keys": []}));
    let stranger = delete(&app, &mallory, id).await;
    assert_eq!(stranger.assert_error(StatusCode::NOT_FOUND), "API key not found");
    let unknown = delete(&app, &alice, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.json, stranger.json, "another user's key and an unknown id get one answer");
    delete(&app, &alice, "not-a-uuid").await.assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(ids(&list(&app, &alice).await), [id]);

    assert_eq!(delete(&app, &alice, id).await.status, StatusCode::NO_CONTENT);
    assert_eq!(list(&app, &alice).await.json, json!({"api_keys": []}));
    delete(&app, &alice, id).await.assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_requests_are_400_and_a_token_is_required() {
    let (app, _db) = app().await;
    let (token, _) = sign_up(&app, "carol").await;
    for body in [
        json!({"scopes": ["tasks:read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["tasks:admin"]}),
        json!({"name": "x", "scopes": "tasks:read"}),
        json!({"name": "x".repeat(65), "scopes": ["tasks:read"]}),
        json!({"name": "x", "scopes": ["tasks:read"], "expires_in_days": 400}),
        json!({"name": "x", "scopes": ["tasks:read"], "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "scopes": ["tasks:read"], "owner": 7}),
    ] {
        create_key(&app, &token, body).await.assert_error(StatusCode::BAD_REQUEST);
    }
    let r = app.call(Method::GET, "/auth/api-keys", None, None).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["reason"], "missing");
    assert_eq!(list(&app, &token).await.json, json!({"api_keys": []}), "nothing was created");
}

#[tokio::test]
async fn an_account_holds_at_most_twenty_live_keys() {
    let (app, db) = app().await;
    let (dave, _) = sign_up(&app, "dave").await;
    let (erin, _) = sign_up(&app, "erin").await;
    let mut keys = Vec::new();
    for _ in 0..20 {
        keys.push(new_key(&app, &dave, &["tasks:read"]).await.2);
    }
    let r = create_key(&app, &dave, json!({"name": "one too many", "scopes": ["tasks:read"]})).await;
    let message = r.assert_error(StatusCode::CONFLICT);
    assert_eq!(r.json["reason"], "api_key_limit");
    assert!(message.contains("20"), "{message}");
    new_key(&app, &erin, &["tasks:read"]).await;

    // A revoked key and an expired key are not live: each frees a place.
    assert_eq!(delete(&app, &dave, &keys[0]).await.status, StatusCode::NO_CONTENT);
    new_key(&app, &dave, &["tasks:read"]).await;
    sqlx::query(
        "UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'
         WHERE id = $1::uuid",
    )
    .bind(&keys[1])
    .execute(&db.pool)
    .await
    .unwrap();
    new_key(&app, &dave, &["tasks:read"]).await;
    create_key(&app, &dave, json!({"name": "again", "scopes": ["tasks:read"]}))
        .await
        .assert_error(StatusCode::CONFLICT);
    assert_eq!(ids(&list(&app, &dave).await).len(), 21, "the expired key is still listed");
}

/// A token from an API key (it carries `client_id`) never manages keys or ends its owner's
/// sessions, whatever its scopes: 403 `insufficient_scope` (RFC 6750 §3.1).
#[tokio::test]
async fn a_key_token_cannot_manage_keys_or_log_everyone_out() {
    let (app, _db) = app().await;
    let (login, _) = sign_up(&app, "frank").await;
    let (client_id, secret, id) = new_key(&app, &login, &["tasks:read", "tasks:write"]).await;
    let key_token = exchange(&app, &client_id, &secret).await;

    let attempts = [
        app.call(
            Method::POST,
            "/auth/api-keys",
            Some(&key_token),
            Some(json!({"name": "x", "scopes": ["tasks:read"]})),
        )
        .await,
        app.call(Method::GET, "/auth/api-keys", Some(&key_token), None).await,
        app.call(Method::DELETE, &format!("/auth/api-keys/{id}"), Some(&key_token), None).await,
        app.call(Method::POST, "/auth/logout-all", Some(&key_token), None).await,
    ];
    for r in attempts {
        r.assert_error(StatusCode::FORBIDDEN);
        assert_eq!(r.json["reason"], "insufficient_scope");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with(r#"Bearer error="insufficient_scope""#), "{challenge}");
    }
    assert_eq!(ids(&list(&app, &login).await), [id], "nothing changed");
    let validated = app.call(Method::POST, "/auth/validate", Some(&login), None).await;
    assert_eq!(validated.status, StatusCode::OK, "the owner's login token was not revoked");
}

/// Deleting a key revokes it everywhere: the feed carries an `api_key` entry (until the token
/// lifetime and the leeway have passed), `/auth/validate` refuses its tokens, and the key no
/// longer authenticates. The owner's login tokens and other keys are untouched.
#[tokio::test]
async fn deleting_a_key_revokes_its_tokens_on_the_feed_and_at_validate() {
    let (app, _db) = app().await;
    let (login, user_id) = sign_up(&app, "grace").await;
    let (client_id, secret, id) = new_key(&app, &login, &["tasks:read"]).await;
    let (other_id, other_secret, _) = new_key(&app, &login, &["tasks:read"]).await;
    let token = exchange(&app, &client_id, &secret).await;
    let other = exchange(&app, &other_id, &other_secret).await;
    let r = app.call(Method::POST, "/auth/validate", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        (r.json["user"]["client_id"].as_str(), r.json["user"]["scope"].as_str()),
        (Some(&*client_id), Some("tasks:read"))
    );

    assert_eq!(delete(&app, &login, &id).await.status, StatusCode::NO_CONTENT);
    let revoked_at = chrono::Utc::now().timestamp();
    let r = app.call(Method::POST, "/auth/validate", Some(&token), None).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!((r.json["reason"].as_str(), r.header("www-authenticate")), (Some("revoked"), Some("Bearer")));
    for still_valid in [&other, &login] {
        assert_eq!(app.call(Method::POST, "/auth/validate", Some(still_valid), None).await.status, StatusCode::OK);
    }

    let feed = app.call(Method::GET, "/internal/revocations", None, None).await;
    let entries = feed.json["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", feed.json);
    let entry = &entries[0];
    assert_eq!((entry["kind"].as_str(), entry["client_id"].as_str()), (Some("api_key"), Some(&*client_id)));
    assert_eq!(entry["user_id"].as_i64(), Some(user_id));
    let lives = entry["exp"].as_i64().unwrap() - revoked_at;
    assert!((900 + 5 - 2..=900 + 5).contains(&lives), "token lifetime + leeway, got {lives}");

    let auth = crate::harness::basic(&client_id, &secret);
    let r =
        crate::harness::token_request(&app, &[("authorization", &auth)], &[("grant_type", "client_credentials")]).await;
    assert_eq!((r.status, r.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
}

/// Revoked and expired keys are deleted `KEEP_REVOKED_DAYS` after; a token naming a key that no
/// longer exists is refused like a revoked one (its feed entry is long gone by then).
#[tokio::test]
async fn long_revoked_or_expired_keys_are_deleted_and_their_tokens_stay_refused() {
    let (app, db) = app().await;
    let (login, _) = sign_up(&app, "henry").await;
    let (client_id, secret, id) = new_key(&app, &login, &["tasks:read"]).await;
    let (_, _, live) = new_key(&app, &login, &["tasks:read"]).await;
    let (_, _, expired) = new_key(&app, &login, &["tasks:read"]).await;
    let (_, _, recently_expired) = new_key(&app, &login, &["tasks:read"]).await;
    for (key, days_ago) in [(&expired, 31), (&recently_expired, 29)] {
        sqlx::query(
            "UPDATE api_keys SET created_at = now() - interval '40 days', expires_at = now() - make_interval(days => $2)
             WHERE id = $1::uuid",
        )
        .bind(key)
        .bind(days_ago)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let token = exchange(&app, &client_id, &secret).await;
    assert_eq!(delete(&app, &login, &id).await.status, StatusCode::NO_CONTENT);
    assert_eq!(auth_svc::api_key::store::prune_revoked(&db.pool).await.unwrap(), 1, "revoked just now: kept");
    sqlx::query("UPDATE api_keys SET revoked_at = now() - interval '31 days' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(auth_svc::api_key::store::prune_revoked(&db.pool).await.unwrap(), 1);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT id::text FROM api_keys").fetch_all(&db.pool).await.unwrap();
    left.sort();
    let mut expected = [live, recently_expired];
    expected.sort();
    assert_eq!(left, expected, "the live key and the one expired 29 days ago stay");
    let r = app.call(Method::POST, "/auth/validate", Some(&token), None).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["reason"], "revoked");
}

/// Creations and deletions share a budget per account (API_KEY_BURST at once, then
/// API_KEY_RATE_PER_MIN): 429 with Retry-After and the contract's body; other accounts are not
/// affected, and a refused deletion revokes nothing.
#[tokio::test]
async fn key_changes_are_throttled_per_account() {
    let db = TestDatabase::new().await;
    let (app, _, metrics) = task(&db, &[("API_KEY_BURST", "2"), ("API_KEY_RATE_PER_MIN", "1")]);
    let (ivan, _) = sign_up(&app, "ivan").await;
    let (judy, _) = sign_up(&app, "judy").await;
    new_key(&app, &ivan, &["tasks:read"]).await;
    let (_, _, id) = new_key(&app, &ivan, &["tasks:read"]).await;
    for r in [
        delete(&app, &ivan, &id).await,
        create_key(&app, &ivan, json!({"name": "third", "scopes": ["tasks:read"]})).await,
    ] {
        let message = r.assert_error(StatusCode::TOO_MANY_REQUESTS);
        let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&secs), "{secs}");
        assert_eq!(message, format!("Too many API key changes for this account, retry in {secs} seconds"));
    }
    assert_eq!(ids(&list(&app, &ivan).await).len(), 2, "nothing changed; listing is not limited");
    new_key(&app, &judy, &["tasks:read"]).await;
    assert!(metrics.render().contains("auth_login_throttled_total{scope=\"api_keys\"} 2"));
}

#[tokio::test]
async fn the_openapi_document_describes_the_key_routes_and_the_token_endpoint() {
    let (app, _db) = app().await;
    let doc = app.call(Method::GET, "/auth/openapi.json", None, None).await.json;
    for (path, method) in [
        ("/auth/api-keys", "post"),
        ("/auth/api-keys", "get"),
        ("/auth/api-keys/{id}", "delete"),
        ("/auth/token", "post"),
    ] {
        assert!(doc["paths"][path].get(method).is_some(), "{path} {method} documented");
    }
    let token = &doc["paths"]["/auth/token"]["post"];
    assert!(token["requestBody"]["content"].get("application/x-www-form-urlencoded").is_some(), "{token}");
    assert!(token["responses"]["401"]["headers"].get("WWW-Authenticate").is_some());
    assert_eq!(doc["components"]["securitySchemes"]["client_basic"]["scheme"], "basic");
}
