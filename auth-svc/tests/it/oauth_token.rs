//! `POST /auth/token`, the client credentials grant (RFC 6749 §4.4): the success body and
//! headers (§5.1), each error of §5.2 with Basic and form client authentication, the token's
//! claims verified with the keyring (HS256, RS256, EdDSA), and the throttles.

use axum::Router;
use axum::http::{Method, StatusCode};
use platform::Secret;
use platform::keyring::{Alg, Claims, Jwks, Keyring, PrivateKey, TokenRules};
use serde_json::json;
use testkit::accounts::sign_up;
use testkit::{Api as _, Reply, TestDatabase};

use crate::harness::{SECRET, basic, new_key, task, token_request};

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

async fn app(extra: &[(&str, &str)]) -> (Router, TestDatabase, platform::metrics::HttpMetrics) {
    let db = TestDatabase::new().await;
    let (app, _, metrics) = task(&db, extra);
    (app, db, metrics)
}

fn assert_token_response(r: &Reply, scope: &str, expires_in: i64) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let fields: Vec<&str> = r.json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!((r.json["token_type"].as_str(), r.json["scope"].as_str()), (Some("Bearer"), Some(scope)));
    assert_eq!(r.json["expires_in"].as_i64(), Some(expires_in));
    r.json["access_token"].as_str().unwrap().to_owned()
}

/// Asserts a §5.2 error: status, `error` code, the contract's `message`/`reason` beside it.
fn assert_oauth_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!((r.json["error"].as_str(), r.json["reason"].as_str()), (Some(code), Some(code)), "{}", r.json);
    let description = r.json["error_description"].as_str().unwrap();
    assert!(!description.is_empty());
    assert_eq!(r.json["message"].as_str(), Some(description));
    let challenge = r.header("www-authenticate");
    assert_eq!(challenge, (status == StatusCode::UNAUTHORIZED).then_some(r#"Basic realm="task-mgmt""#));
}

#[tokio::test]
async fn a_key_is_exchanged_by_basic_or_form_authentication_for_a_token_of_its_owner() {
    let (app, db, _) = app(&[]).await;
    let (login, user_id) = sign_up(&app, "robot").await;
    let (client_id, secret, id) = new_key(&app, &login, &["tasks:read", "tasks:write"]).await;

    let auth = basic(&client_id, &secret);
    let by_basic = token_request(&app, &[("authorization", &auth)], &[GRANT]).await;
    let token = assert_token_response(&by_basic, "tasks:read tasks:write", 900);
    let by_form = token_request(
        &app,
        &[],
        &[GRANT, ("client_id", &client_id), ("client_secret", &secret), ("scope", "tasks:read")],
    )
    .await;
    let narrowed = assert_token_response(&by_form, "tasks:read", 900);

    let ring = Keyring::new(&Secret::new(SECRET), None).unwrap();
    let claims = ring.verify_str(&token, &TokenRules::default()).unwrap();
    assert_eq!((claims.user_id, claims.sub.clone()), (user_id, user_id.to_string()));
    assert!(claims.username.starts_with("robot") && claims.email.starts_with("robot"));
    assert_eq!(
        (claims.scope.as_deref(), claims.client_id.as_deref()),
        (Some("tasks:read tasks:write"), Some(&*client_id))
    );
    assert_eq!(claims.exp - claims.iat, 900);
    let narrowed = ring.verify_str(&narrowed, &TokenRules::default()).unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("tasks:read"));
    assert_ne!(claims.jti, narrowed.jti);

    let listed = app.call(Method::GET, "/auth/api-keys", Some(&login), None).await;
    let last_used = &listed.json["api_keys"][0]["last_used_at"];
    assert!(last_used.is_string(), "the exchange is recorded: {}", listed.json);
    let stored: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(stored.is_some());
}

#[tokio::test]
async fn each_error_of_rfc_6749_section_5_2() {
    let (app, db, _) = app(&[]).await;
    let (login, _) = sign_up(&app, "errs").await;
    let (client_id, secret, _) = new_key(&app, &login, &["tasks:read"]).await;
    let (expired_id, expired_secret, expired_key) = new_key(&app, &login, &["tasks:read"]).await;
    let (revoked_id, revoked_secret, revoked_key) = new_key(&app, &login, &["tasks:read"]).await;
    sqlx::query(
        "UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second'
         WHERE id = $1::uuid",
    )
    .bind(&expired_key)
    .execute(&db.pool)
    .await
    .unwrap();
    let r = app.call(Method::DELETE, &format!("/auth/api-keys/{revoked_key}"), Some(&login), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let good = basic(&client_id, &secret);
    let wrong_secret = format!("tms_{}", "A".repeat(43));

    // invalid_client: one answer (status, body, challenge) for every failure, Basic or form.
    let mut bodies = Vec::new();
    for (headers, form) in [
        (vec![("authorization", basic(&client_id, &wrong_secret))], vec![GRANT]),
        (vec![], vec![GRANT, ("client_id", client_id.as_str()), ("client_secret", wrong_secret.as_str())]),
        (vec![("authorization", basic("tmk_AAAAAAAAAAAAAAAAAAAAAA", &secret))], vec![GRANT]),
        (vec![("authorization", basic("someone", "something"))], vec![GRANT]),
        (vec![("authorization", basic(&expired_id, &expired_secret))], vec![GRANT]),
        (vec![], vec![GRANT, ("client_id", revoked_id.as_str()), ("client_secret", revoked_secret.as_str())]),
        (vec![], vec![GRANT]),
        (vec![], vec![GRANT, ("client_id", client_id.as_str())]),
        (vec![("authorization", format!("Bearer {login}"))], vec![GRANT]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = token_request(&app, &headers, &form).await;
        assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
        bodies.push(r.json);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one body for every client failure: {bodies:?}");
    assert_eq!(bodies[0]["error_description"], "Client authentication failed");

    let auth = [("authorization", good.as_str())];
    // (form, error) with valid Basic authentication.
    let cases: [(Vec<(&str, &str)>, &str); 7] = [
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (vec![("grant_type", "authorization_code"), ("code", "x")], "unsupported_grant_type"),
        (vec![("scope", "tasks:read")], "invalid_request"),
        (vec![GRANT, GRANT], "invalid_request"),
        (vec![GRANT, ("client_id", client_id.as_str()), ("client_secret", secret.as_str())], "invalid_request"),
        (vec![GRANT, ("scope", "tasks:read tasks:write")], "invalid_scope"),
        (vec![GRANT, ("scope", "admin")], "invalid_scope"),
    ];
    for (form, code) in cases {
        assert_oauth_error(&token_request(&app, &auth, &form).await, StatusCode::BAD_REQUEST, code);
    }
    // A JSON body is not the grant's form.
    let r = app
        .send(
            Method::POST,
            "/auth/token",
            &[("authorization", &good)],
            Some(json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // The key still works: none of the above used it up.
    assert_token_response(&token_request(&app, &auth, &[GRANT]).await, "tasks:read", 900);
}

/// Tokens from keys are signed like login tokens in every mode: verified with the published
/// keys alone (what a gateway holds), with the configured lifetime.
#[tokio::test]
async fn tokens_verify_with_the_published_keys_in_rs256_and_eddsa_mode() {
    let db = TestDatabase::new().await;
    for alg in [Alg::RS256, Alg::EdDSA] {
        let (_, pem) = PrivateKey::generate(alg).unwrap();
        let mut env = crate::harness::env(
            &db,
            &[("JWT_ALG", alg.as_str()), ("JWT_PRIVATE_KEY", pem.expose()), ("API_TOKEN_LIFETIME_SECS", "120")],
        );
        env.remove("JWT_SECRET");
        let config = auth_svc::config::Config::from_source(&env).unwrap();
        let app =
            auth_svc::router(auth_svc::AppState::new(config, db.pool.clone(), platform::metrics::HttpMetrics::new()));
        let (login, user_id) = sign_up(&app, &format!("asym{}", alg.as_str().to_lowercase())).await;
        let (client_id, secret, _) = new_key(&app, &login, &["tasks:write"]).await;
        let r = token_request(&app, &[("authorization", &basic(&client_id, &secret))], &[GRANT]).await;
        let token = assert_token_response(&r, "tasks:write", 120);

        let jwks = app.call(Method::GET, "/auth/.well-known/jwks.json", None, None).await;
        let verifier = Keyring::from_jwks(&Jwks::parse(&jwks.raw).unwrap()).unwrap();
        let claims: Claims = verifier.verify_str(&token, &TokenRules::default()).unwrap();
        assert_eq!(claims.user_id, user_id, "{alg}");
        assert_eq!((claims.scope.as_deref(), claims.client_id.as_deref()), (Some("tasks:write"), Some(&*client_id)));
        assert_eq!(claims.exp - claims.iat, 120, "{alg}: API_TOKEN_LIFETIME_SECS");
        let validated = app.call(Method::POST, "/auth/validate", Some(&token), None).await;
        assert_eq!(validated.status, StatusCode::OK, "{alg}: {}", validated.json);
    }
}

fn throttled_count(metrics: &platform::metrics::HttpMetrics, scope: &str) -> u64 {
    let series = format!("auth_login_throttled_total{{scope=\"{scope}\"}} ");
    let text = metrics.render();
    text.lines().find_map(|l| l.strip_prefix(&series)).unwrap_or_else(|| panic!("no {series}")).trim().parse().unwrap()
}

fn assert_429(r: &Reply, max_secs: u64) -> &str {
    let message = r.assert_error(StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=max_secs).contains(&secs), "Retry-After {secs}");
    message
}

/// Per key: TOKEN_BURST exchanges at once, then TOKEN_RATE_PER_MIN; failed authentications do
/// not spend a key's budget (its client_id is public). Per source: the login budget.
#[tokio::test]
async fn exchanges_are_throttled_per_key_and_per_source() {
    let (app, _db, metrics) =
        app(&[("TOKEN_BURST", "2"), ("TOKEN_RATE_PER_MIN", "1"), ("CLIENT_BURST", "8"), ("CLIENT_RATE_PER_MIN", "1")])
            .await;
    let (login, _) = sign_up(&app, "hasty").await;
    let (client_id, secret, _) = new_key(&app, &login, &["tasks:read"]).await;
    let (other_id, other_secret, _) = new_key(&app, &login, &["tasks:read"]).await;
    let from = |source: &'static str, id: &str, secret: &str| {
        vec![("x-forwarded-for", source.to_owned()), ("authorization", basic(id, secret))]
    };
    let send = |headers: Vec<(&'static str, String)>| {
        let app = app.clone();
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(&app, &headers, &[GRANT]).await
        }
    };
    let wrong = format!("tms_{}", "B".repeat(43));
    for _ in 0..2 {
        assert_eq!(send(from("203.0.113.1", &client_id, &wrong)).await.status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..2 {
        assert_token_response(&send(from("203.0.113.2", &client_id, &secret)).await, "tasks:read", 900);
    }
    let r = send(from("203.0.113.3", &client_id, &secret)).await;
    assert_eq!(
        assert_429(&r, 60),
        format!("Too many token requests for this API key, retry in {} seconds", r.header("retry-after").unwrap())
    );
    assert_eq!(throttled_count(&metrics, "token"), 1);
    assert_token_response(&send(from("203.0.113.3", &other_id, &other_secret)).await, "tasks:read", 900);

    // One source: CLIENT_BURST requests of any kind (the two above from .3 and six more), then 429.
    for _ in 0..6 {
        send(from("203.0.113.3", &other_id, &wrong)).await;
    }
    let r = send(from("203.0.113.3", &other_id, &other_secret)).await;
    assert!(assert_429(&r, 60).contains("from this address"), "{}", r.json);
    assert_eq!(throttled_count(&metrics, "client"), 1);
    // The per-source limit is the login one: a login from that source is refused too.
    let login_attempt = app
        .send(Method::POST, "/auth/login", &[("x-forwarded-for", "203.0.113.3")], Some(json!({"username": "x"})))
        .await;
    assert_429(&login_attempt, 60);
}
