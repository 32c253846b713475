//! API keys on the whole local stack, through the front door as a machine client would use
//! them: a user creates a read-only key, a client exchanges it for an access token (OAuth 2.0
//! client credentials, RFC 6749 §4.4), reads with it and is refused writes (403
//! `insufficient_scope`, RFC 6750 §3.1); the user revokes the key and every gateway refuses its
//! token within the revocation poll interval. The token endpoint's RFC 6749 §5.2 errors, and a
//! flood from one user answered 429 while another user is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use devstack::stack::{Options, Stack};
use e2e::{Http, call, client, login, options, register};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::wait;

/// `[revocation] poll_interval_secs` in this stack.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

fn key_options() -> Options {
    let mut opts = options();
    opts.sidecar_set.extend([
        ("revocation.poll_interval_secs".into(), POLL_INTERVAL.as_secs().to_string()),
        // Low enough for the flood below to reach in a second, high enough for the rest.
        ("rate_limit.fleet_rate_per_sec".into(), "20".into()),
        ("rate_limit.burst".into(), "20".into()),
    ]);
    opts
}

/// HTTP Basic credentials (client id, secret), if any.
type Basic<'a> = Option<(&'a str, &'a str)>;

/// A token request (credentials, form) and the status and RFC 6749 `error` it must get.
type Case<'a> = (Basic<'a>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);

/// `POST /auth/token` with a form body and optional HTTP Basic credentials.
async fn token_request(
    c: &reqwest::Client,
    base: &str,
    basic: Basic<'_>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = c.post(format!("{base}/auth/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_key_reads_is_refused_writes_and_its_token_dies_with_it() {
    let stack = Stack::start(key_options()).await.expect("the stack starts");
    let base = stack.url();
    let c = client();
    register(&Http::new(&c, &base), "keyowner").await;
    let user_token = login(&Http::new(&c, &base), "keyowner").await;

    let created = call(
        &c,
        Method::POST,
        &format!("{base}/auth/api-keys"),
        Some(&user_token),
        Some(json!({"name": "nightly-report", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let key = &created.json["api_key"];
    let (id, client_id, secret) =
        (key["id"].as_str().unwrap(), key["client_id"].as_str().unwrap(), key["client_secret"].as_str().unwrap());
    assert!(client_id.starts_with("tmk_") && secret.starts_with("tms_"), "{key}");

    // The secret is shown once: never listed.
    let listed = call(&c, Method::GET, &format!("{base}/auth/api-keys"), Some(&user_token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "the list shows the secret");

    let (status, headers, grant) =
        token_request(&c, &base, Some((client_id, secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!((grant["token_type"].as_str(), grant["scope"].as_str()), (Some("Bearer"), Some("tasks:read")));
    assert!(grant["expires_in"].as_u64().unwrap() > 0);
    let access = grant["access_token"].as_str().unwrap().to_owned();

    // Reads pass, every write is refused at the gateway with the scope it needs.
    let read = call(&c, Method::GET, &format!("{base}/tasks"), Some(&access), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.json);
    for (method, path) in
        [(Method::POST, "/tasks".to_owned()), (Method::PUT, "/tasks/1".into()), (Method::DELETE, "/tasks/1".into())]
    {
        let w = call(&c, method.clone(), &format!("{base}{path}"), Some(&access), Some(json!({"title": "x"}))).await;
        assert_eq!(w.status, StatusCode::FORBIDDEN, "{method} {path}: {}", w.json);
        assert_eq!(w.json["reason"], "insufficient_scope", "{}", w.json);
        let challenge = w.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer ") && challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    }
    // A key's token cannot manage keys.
    let nested = call(
        &c,
        Method::POST,
        &format!("{base}/auth/api-keys"),
        Some(&access),
        Some(json!({"name": "x", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(nested.status, StatusCode::FORBIDDEN, "{}", nested.json);

    // Revoke the key: every gateway refuses its token within the poll interval (+1 s).
    let revoked_at = Instant::now();
    let del = call(&c, Method::DELETE, &format!("{base}/auth/api-keys/{id}"), Some(&user_token), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.json);
    for i in 0..stack.task_count() {
        let gateway = stack.gateway_addrs(i).0;
        let refused =
            wait::until_some("the key's token refused as revoked", POLL_INTERVAL + Duration::from_secs(1), || {
                let (c, access) = (c.clone(), access.clone());
                async move {
                    let r = call(&c, Method::GET, &format!("http://{gateway}/tasks"), Some(&access), None).await;
                    (r.status == StatusCode::UNAUTHORIZED).then_some(r.json)
                }
            })
            .await;
        assert_eq!(refused["reason"], "revoked", "{refused}");
        eprintln!("gateway {gateway}: the revoked key's token refused {:?} after the DELETE", revoked_at.elapsed());
    }
    // The user's own token is untouched; the key can no longer be exchanged.
    assert_eq!(call(&c, Method::GET, &format!("{base}/tasks"), Some(&user_token), None).await.status, StatusCode::OK);
    let (status, headers, body) =
        token_request(&c, &base, Some((client_id, secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_endpoint_answers_rfc_6749_errors_and_one_users_flood_is_429_while_another_is_served() {
    let stack = Stack::start(key_options()).await.expect("the stack starts");
    let base = stack.url();
    let c = client();
    register(&Http::new(&c, &base), "flooder").await;
    register(&Http::new(&c, &base), "neighbour").await;
    let flooder = login(&Http::new(&c, &base), "flooder").await;
    let neighbour = login(&Http::new(&c, &base), "neighbour").await;
    let created = call(
        &c,
        Method::POST,
        &format!("{base}/auth/api-keys"),
        Some(&flooder),
        Some(json!({"name": "ro", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let (id, secret) = (
        created.json["api_key"]["client_id"].as_str().unwrap().to_owned(),
        created.json["api_key"]["client_secret"].as_str().unwrap().to_owned(),
    );

    // RFC 6749 §5.2, each through the front door.
    let basic = Some((id.as_str(), secret.as_str()));
    let cases: [Case; 5] = [
        (basic, vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        (basic, vec![("grant_type", "password")], StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        (
            basic,
            vec![("grant_type", "client_credentials"), ("scope", "tasks:write")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some((id.as_str(), "tms_wrong")),
            vec![("grant_type", "client_credentials")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            None,
            vec![("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())],
            StatusCode::OK,
            "",
        ),
    ];
    for (auth, form, want, error) in cases {
        let (status, headers, body) = token_request(&c, &base, auth, &form).await;
        assert_eq!(status, want, "{form:?}: {body}");
        if !error.is_empty() {
            assert_eq!(body["error"], error, "{body}");
            assert!(body["error_description"].is_string(), "{body}");
        }
        if want == StatusCode::UNAUTHORIZED {
            assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"), "{headers:?}");
        }
    }

    // A flood from one user gets 429s with Retry-After and the RateLimit fields; the other user
    // is served meanwhile.
    let url = format!("{base}/tasks");
    let (mut limited, mut served) = (None, 0);
    for _ in 0..200 {
        let r = call(&c, Method::GET, &url, Some(&flooder), None).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        served += 1;
    }
    let limited = limited.expect("the flood was never limited");
    assert_eq!(limited.json["reason"], "rate_limited", "{}", limited.json);
    assert!(limited.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        limited.headers.contains_key("ratelimit") && limited.headers.contains_key("ratelimit-policy"),
        "{:?}",
        limited.headers
    );
    let other = call(&c, Method::GET, &url, Some(&neighbour), None).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.json);
    eprintln!("flood: {served} requests served before the first 429; the neighbour got {}", other.status);
    stack.shutdown().await.unwrap();
}
