//! One response type for every test: an in-process router's answer or a server's over HTTP.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// A whole response, with its body parsed as JSON when it is JSON (`Value::Null` otherwise).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub raw: Bytes,
}

impl Reply {
    /// From a status, headers and the whole body.
    pub fn new(status: StatusCode, headers: HeaderMap, raw: Bytes) -> Self {
        let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Self { status, headers, json, raw }
    }

    /// Reads a reqwest response to its end. Panics when the body cannot be read.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let raw = response.bytes().await.expect("the response body reads");
        Self::new(status, headers, raw)
    }

    /// Header `name` as text, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error body for `status`: `Content-Type: application/json`,
    /// `error` is the status's reason phrase, `message` a non-empty string, which is returned.
    pub fn assert_error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.raw));
        assert_eq!(self.header("content-type"), Some("application/json"), "error bodies are JSON");
        assert_eq!(self.json["error"], status.canonical_reason().unwrap_or_default(), "{}", self.json);
        let message = self.json["message"].as_str().expect("error body has a message");
        assert!(!message.is_empty(), "{}", self.json);
        message
    }
}
