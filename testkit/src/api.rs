//! Sending a test's requests: to an axum [`Router`] in-process, or to a server over HTTP
//! ([`Http`]), through one trait ([`Api`]) so that helpers such as [`crate::accounts`] work on
//! both; and the one HTTP client every test uses ([`client`]).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::reply::Reply;

/// The tests' HTTP client: a 30 s timeout (a hung server fails the test instead of hanging it)
/// and a pool large enough for the concurrent tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Something that answers requests: a router in-process, or a server over HTTP.
pub trait Api {
    /// Sends `method path` with `headers`; `body` is sent as JSON. Panics when nothing answers.
    fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> impl Future<Output = Reply>;

    /// [`Api::send`] with `Authorization: Bearer <token>` when a token is given.
    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> impl Future<Output = Reply> {
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
            self.send(method, path, &headers, body).await
        }
    }
}

impl Api for Router {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
        send(self, request(method, path, headers, body)).await
    }
}

/// A server over HTTP at `base` (e.g. `http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    pub fn new(client: &reqwest::Client, base: &str) -> Self {
        Self { client: client.clone(), base: base.trim_end_matches('/').to_owned() }
    }
}

impl Api for Http {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method, &url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        Reply::read(resp).await
    }
}

/// Sends one request to `url`, like the guide's curl commands: `Authorization: Bearer` when a
/// token is given, `body` as JSON.
pub async fn call(c: &reqwest::Client, method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    Http { client: c.clone(), base: String::new() }.call(method, url, token, body).await
}

/// Builds a request for a router; `body` is sent as JSON.
pub fn request(method: Method, uri: &str, headers: &[(&str, &str)], body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    match body {
        Some(json) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .expect("valid request"),
        None => builder.body(Body::empty()).expect("valid request"),
    }
}

/// Sends `req` through `app` in-process and collects the whole response.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response.into_body().collect().await.expect("body collects").to_bytes();
    Reply::new(status, headers, raw)
}
