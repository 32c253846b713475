//! The original design's pattern, for comparison: a proxy that, for every request, POSTs the
//! bearer token to auth-svc `/auth/validate` and then forwards the request to task-svc with the
//! identity headers (what the seed's Node `authenticateToken` middleware did with axios, with
//! the forwarding the gateway does). Pooled keep-alive HTTP clients both ways; no cache.
//!
//! Runs as its own process (`bench validate-proxy ...`) so that its CPU and memory are measured
//! like the gateway's.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Largest request body forwarded (task-svc's own limit is 64 KiB).
const BODY_LIMIT: usize = 256 * 1024;
/// Paths forwarded without a token, as the gateway's `[routes] public`.
const PUBLIC: &[&str] = &["/tasks/health"];
/// Headers not copied in either direction besides the hop-by-hop ones
/// ([`platform::http::HOP_BY_HOP`]): reqwest and axum frame the bodies themselves and reqwest
/// sets `Host` from the URL.
fn is_framing_or_host(name: &str) -> bool {
    name == "transfer-encoding" || name == "host"
}

#[derive(Clone)]
struct Proxy {
    client: reqwest::Client,
    validate_url: String,
    upstream: String,
}

#[derive(Deserialize)]
struct Validated {
    user: ValidatedUser,
}

#[derive(Deserialize)]
struct ValidatedUser {
    /// What the gateway forwards of an identity (`x-user-id`); the rest of auth-svc's answer
    /// is read and dropped, as the original design's proxy would.
    user_id: i64,
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": status.canonical_reason().unwrap_or("Error"), "message": message});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn skip_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    platform::http::is_hop_by_hop(n)
        || is_framing_or_host(n)
        || n == "authorization"
        || platform::identity::is_identity_header(n)
}

async fn handle(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let mut identity: Option<ValidatedUser> = None;
    if !PUBLIC.contains(&parts.uri.path()) {
        let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
            return error(StatusCode::UNAUTHORIZED, "Access token required");
        };
        // The per-request call to auth-svc: the cost the gateway removes.
        let answer = proxy
            .client
            .post(&proxy.validate_url)
            .header(header::AUTHORIZATION, auth.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "auth service unavailable"),
        };
        if answer.status() != StatusCode::OK {
            return error(StatusCode::UNAUTHORIZED, "Invalid or expired token");
        }
        match answer.json::<Validated>().await {
            Ok(v) => identity = Some(v.user),
            Err(_) => return error(StatusCode::BAD_GATEWAY, "unexpected answer from auth service"),
        }
    }
    forward(&proxy, parts.method, &path, &parts.headers, identity, body).await
}

async fn forward(
    proxy: &Proxy,
    method: http::Method,
    path: &str,
    headers: &HeaderMap,
    identity: Option<ValidatedUser>,
    body: Bytes,
) -> Response {
    let mut out = HeaderMap::with_capacity(headers.len() + 3);
    for (name, value) in headers {
        if !skip_request_header(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(user) = identity {
        out.insert(platform::identity::USER_ID, HeaderValue::from(user.user_id));
    }
    let sent = proxy.client.request(method, format!("{}{path}", proxy.upstream)).headers(out).body(body).send().await;
    let upstream = match sent {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_GATEWAY, "task service unavailable"),
    };
    let status = upstream.status();
    let mut response_headers = HeaderMap::with_capacity(upstream.headers().len());
    for (name, value) in upstream.headers() {
        let n = name.as_str();
        if !platform::http::is_hop_by_hop(n) && !is_framing_or_host(n) && name != header::CONTENT_LENGTH {
            response_headers.append(name.clone(), value.clone());
        }
    }
    let Ok(bytes) = upstream.bytes().await else {
        return error(StatusCode::BAD_GATEWAY, "task service answer cut short");
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Serves the proxy on `listen` until the process is killed.
pub async fn serve(listen: SocketAddr, auth: &str, upstream: &str) -> Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(30))
        .build()?;
    let proxy = Proxy {
        client,
        validate_url: format!("{}/auth/validate", auth.trim_end_matches('/')),
        upstream: upstream.trim_end_matches('/').to_owned(),
    };
    let app = Router::new().fallback(handle).with_state(proxy);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}
