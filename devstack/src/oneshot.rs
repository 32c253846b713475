//! Driving an axum `Router` in-process, one request at a time, for handler tests.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A response, with its body parsed as JSON when it is JSON (`Value::Null` otherwise).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub raw: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error body: `error` is the status's reason phrase, `message` set.
    pub fn assert_error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.raw));
        assert_eq!(self.header("content-type"), Some("application/json"), "error bodies are JSON");
        assert_eq!(self.json["error"], status.canonical_reason().unwrap_or_default(), "{}", self.json);
        self.json["message"].as_str().expect("error body has a message")
    }
}

/// Builds a request; `body` is sent as JSON.
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

/// Sends `req` through `app` and collects the whole response.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let raw = response.into_body().collect().await.expect("body collects").to_bytes();
    let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Reply { status, headers, json, raw }
}
