//! Several requests on one connection, written at once (RFC 9112 section 9.3.2: answered in
//! order), and requests over the gateway's limits (`[server] max_header_count` ...), each answered
//! by the gateway with the contract's JSON body before task-svc, whose own answers to most of
//! them (hyper's) are empty-bodied.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use testkit::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw_http::gateway_before_probe;

/// One response read off a connection.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {} {:?}", self.head, self.body))
    }
}

/// Splits what a server sent on one connection into responses (Content-Length or chunked
/// bodies); a trailing partial response is ignored.
fn split_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
            })
        };
        let mut rest = &bytes[end + 4..];
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else { return out };
                let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or_default();
                    break;
                }
                let Some(chunk) = rest.get(..size) else { return out };
                body.extend_from_slice(chunk);
                rest = rest.get(size + 2..).unwrap_or_default();
            }
        } else {
            let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
            let Some(b) = rest.get(..length) else { return out };
            body.extend_from_slice(b);
            rest = &rest[length..];
        }
        out.push(Response { status, head, body });
        bytes = rest;
    }
    out
}

/// Writes `request` in one write, then reads until the server closes the connection (or 10 s).
async fn send(addr: SocketAddr, request: &[u8]) -> (Vec<Response>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await.is_ok();
    (split_responses(&buf), closed)
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let (gateway, _, _auth) = gateway_before_probe().await;
    let token = mint(OLD_SECRET, 7, 600);
    // Forwarded GETs, a forwarded POST with a body, one the gateway answers itself (no token),
    // an authenticated one; the last closes the connection.
    let mut request = String::new();
    for seq in 0..3 {
        request.push_str(&format!("GET /tasks/health HTTP/1.1\r\nHost: a\r\nX-Seq: {seq}\r\n\r\n"));
    }
    request.push_str("POST /tasks/health HTTP/1.1\r\nHost: a\r\nX-Seq: 3\r\nContent-Length: 5\r\n\r\nhello");
    request.push_str("GET /tasks HTTP/1.1\r\nHost: a\r\nX-Seq: 4\r\n\r\n");
    request.push_str(&format!("GET /tasks HTTP/1.1\r\nHost: a\r\nX-Seq: 5\r\nAuthorization: Bearer {token}\r\n\r\n"));
    request.push_str("GET /tasks/health HTTP/1.1\r\nHost: a\r\nX-Seq: 6\r\nConnection: close\r\n\r\n");
    let (responses, closed) = send(gateway.addr, request.as_bytes()).await;
    assert!(closed, "the connection stayed open after Connection: close");
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 401, 200, 200], "{responses:#?}");
    for (seq, r) in responses.iter().enumerate().filter(|(_, r)| r.status == 200) {
        let seen: Vec<(String, String)> = serde_json::from_slice(&r.body).unwrap();
        assert!(seen.contains(&("x-seq".to_owned(), seq.to_string())), "response {seq} out of order: {seen:?}");
    }
    assert_eq!(responses[4].json()["error"], "Unauthorized");
}

/// Asserts `r` is the gateway's JSON refusal: `status`, the contract's body with `reason`.
fn assert_refused(name: &str, r: &Response, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{name}: {}", r.head);
    assert!(r.head.to_ascii_lowercase().contains("content-type: application/json"), "{name}: {}", r.head);
    let body = r.json();
    let phrase = http::StatusCode::from_u16(status).unwrap().canonical_reason().unwrap();
    assert_eq!(body["error"], phrase, "{name}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {body}");
    assert_eq!(body["reason"], reason, "{name}: {body}");
}

#[tokio::test]
async fn a_request_over_a_limit_gets_the_gateways_json_before_task_svc_answers() {
    let h = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let token = mint(OLD_SECRET, 7, 600);
    let headers =
        |n: usize, size: usize| -> String { (0..n).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(size))).collect() };
    let get = |target: String, extra: String| format!("GET {target} HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // hyper (task-svc) refuses more than 100 fields with an empty 431.
        ("120 header fields", get("/tasks/health".into(), headers(120, 1)).into(), 431, "too_many_headers"),
        // More than pingora's own 256: refused while parsing.
        ("300 header fields", get("/tasks/health".into(), headers(300, 1)).into(), 431, "too_many_headers"),
        ("a 40 KiB header field", get("/tasks/health".into(), headers(1, 40 * 1024)).into(), 431, "headers_too_large"),
        // Over hyper's ~400 KiB head buffer (its answer: an empty 431).
        ("a 500 KiB header section", get("/tasks/health".into(), headers(10, 50 * 1024)).into(), 431, "headers_too_large"),
        ("a 9 KiB target", get(format!("/tasks/health?q={}", "a".repeat(9 * 1024)), String::new()).into(), 414, "uri_too_long"),
        // Over the `http` crate's longest URI (its answer: hyper's empty 414).
        ("a 70 KiB target", get(format!("/tasks/health?q={}", "a".repeat(70 * 1024)), String::new()).into(), 414, "uri_too_long"),
        (
            "Content-Length over 64 KiB",
            format!("POST /tasks HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n{}", "x".repeat(70000)).into(),
            413,
            "body_too_large",
        ),
        (
            "a chunked body over 64 KiB",
            [
                format!("POST /tasks HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes(),
                (0..10).flat_map(|_| format!("2000\r\n{}\r\n", "x".repeat(0x2000)).into_bytes()).collect(),
                b"0\r\n\r\n".to_vec(),
            ]
            .concat(),
            413,
            "body_too_large",
        ),
    ];
    let mut messages: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> = Default::default();
    for (name, request, status, reason) in cases {
        let (responses, closed) = send(h.gateway.addr, &request).await;
        assert_eq!(responses.len(), 1, "{name}: {responses:#?}");
        assert_refused(name, &responses[0], status, reason);
        assert!(closed, "{name}: the connection stayed open");
        messages.entry(reason).or_default().insert(responses[0].json()["message"].as_str().unwrap().to_owned());
    }
    // One limit, one message, whichever layer of the gateway met it (before parsing, in its
    // request filter, or while the body streamed).
    for (reason, said) in &messages {
        assert_eq!(said.len(), 1, "{reason}: {said:?}");
    }
    // Within every limit, task-svc answers.
    let (responses, _) =
        send(h.gateway.addr, get("/tasks/health".into(), headers(60, 100) + "Connection: close\r\n").as_bytes()).await;
    assert_eq!(responses.first().map(|r| r.status), Some(200), "{responses:#?}");
    // A broken limit is the client's: access lines, no ERROR line (it quoted the request's head).
    // Each request's lines are written in order on its thread: once its access line is in, an
    // ERROR line for it would be too.
    let text = log_once(&h.gateway, "the access lines of a 413 and a 431", |t| {
        t.contains("status=413") && t.contains("status=431")
    })
    .await;
    assert!(!text.contains("ERROR"), "{text}");
}
