//! What the front door refuses itself, one test per class, over a raw socket: a JSON error in
//! the contract's shape with a `reason`, the ALB's status, `X-Request-Id`, `Connection: close`,
//! and nothing reaches a target.

use axum::http::StatusCode;
use front_door::FrontDoor;

use crate::kit::*;

/// Sends each request on its own connection and asserts the refusal; none reaches a target.
async fn assert_all_refused(door: &FrontDoor, cases: &[(&str, Vec<u8>)], want: StatusCode, reason: &str) {
    let addr = door.public_addr().unwrap();
    let before = task_requests(door);
    for (name, request) in cases {
        let (status, head, json) = raw(addr, request).await;
        assert_eq!(status, want.as_u16(), "{name}: {head}\n{json}");
        assert_refused(status, &head, &json, want, reason);
    }
    assert_eq!(task_requests(door), before, "nothing reached the target");
}

/// `n` header fields `X-H<i>: <size bytes>`, each line ending with CRLF.
fn fields(n: usize, size: usize) -> String {
    (0..n).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(size))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_line_is_a_json_400() {
    let (door, _) = door().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a method that is not a token", b"G(T /tasks HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("two spaces after the method", b"GET  /tasks HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("HTTP/1.2", b"GET /tasks HTTP/1.2\r\nHost: a\r\n\r\n".to_vec()),
        ("HTTP/2.0", b"GET /tasks HTTP/2.0\r\nHost: a\r\n\r\n".to_vec()),
        ("a lower-case version", b"GET /tasks http/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("no version", b"GET /tasks\r\nHost: a\r\n\r\n".to_vec()),
        ("no request line", b"HELLO\r\n\r\n".to_vec()),
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        ("a target that is not a path", b"GET tasks HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("a query without a path", b"GET ?x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
    ];
    assert_all_refused(&door, &cases, StatusCode::BAD_REQUEST, "malformed_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_line_is_a_json_400() {
    let (door, _) = door().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a space in a name", b"GET /tasks HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n".to_vec()),
        ("a control byte in a name", b"GET /tasks HTTP/1.1\r\nHost: a\r\nX\x01Y: x\r\n\r\n".to_vec()),
        ("no colon", b"GET /tasks HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n".to_vec()),
        ("a space before the colon", b"GET /tasks HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n".to_vec()),
        ("a folded line (obs-fold)", b"GET /tasks HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n".to_vec()),
        ("a bare CR", b"GET /tasks HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n".to_vec()),
    ];
    assert_all_refused(&door, &cases, StatusCode::BAD_REQUEST, "malformed_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repeated_or_invalid_host_is_a_json_400() {
    let (door, _) = door().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("userinfo in Host", b"GET /tasks HTTP/1.1\r\nHost: user@a\r\n\r\n".to_vec()),
        ("a space in Host", b"GET /tasks HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec()),
        ("a port that is not a number", b"GET /tasks HTTP/1.1\r\nHost: a:x\r\n\r\n".to_vec()),
        ("a port past 65535", b"GET /tasks HTTP/1.1\r\nHost: a:65536\r\n\r\n".to_vec()),
        ("HTTP/1.1 without Host", b"GET /tasks HTTP/1.1\r\n\r\n".to_vec()),
        ("two Host lines", b"GET /tasks HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec()),
        ("two equal Host lines", b"GET /tasks HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n".to_vec()),
    ];
    assert_all_refused(&door, &cases, StatusCode::BAD_REQUEST, "malformed_request").await;
    // HTTP/1.0 does not need Host (RFC 9112 section 3.2 is about HTTP/1.1), and a host with a
    // port, an empty port (RFC 3986 `port = *DIGIT`) or an IPv6 literal is a host: forwarded.
    let forwarded: [&[u8]; 4] = [
        b"GET /tasks/1 HTTP/1.0\r\n\r\n",
        b"GET /tasks/1 HTTP/1.1\r\nHost: a:\r\nConnection: close\r\n\r\n",
        b"GET /tasks/1 HTTP/1.1\r\nHost: a:8080\r\nConnection: close\r\n\r\n",
        b"GET /tasks/1 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    ];
    for request in forwarded {
        let (status, head, json) = raw(door.public_addr().unwrap(), request).await;
        assert_eq!(status, 200, "{}: {head}\n{json}", request.escape_ascii());
        assert!(json["target"].as_str().is_some_and(|t| t.starts_with("task-")), "{json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_body_framing_is_a_json_400_and_an_unknown_coding_a_501() {
    let (door, _) = door().await;
    let post = |headers: &str| format!("POST /tasks HTTP/1.1\r\nHost: a\r\n{headers}\r\n0\r\n\r\n").into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Content-Length and Transfer-Encoding", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
        ("Transfer-Encoding and Content-Length", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
        ("two different Content-Length", post("Content-Length: 1\r\nContent-Length: 2\r\n")),
        ("two equal Content-Length", post("Content-Length: 3\r\nContent-Length: 3\r\n")),
        ("a list in Content-Length", post("Content-Length: 3, 3\r\n")),
        ("a negative Content-Length", post("Content-Length: -1\r\n")),
        ("a Content-Length past u64", post("Content-Length: 99999999999999999999999\r\n")),
        // The two largest u64 values, which hyper keeps for its own use (an empty 431 from it).
        ("a Content-Length of 2^64 - 1", post("Content-Length: 18446744073709551615\r\n")),
        ("a Content-Length of 2^64 - 2", post("Content-Length: 18446744073709551614\r\n")),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"POST /tasks HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        ),
    ];
    assert_all_refused(&door, &cases, StatusCode::BAD_REQUEST, "malformed_request").await;
    // The ALB's HTTP 501: a coding other than chunked (and chunked not last is one).
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", post("Transfer-Encoding: gzip\r\n")),
        ("gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n")),
        ("chunked, gzip", post("Transfer-Encoding: chunked, gzip\r\n")),
    ];
    assert_all_refused(&door, &cases, StatusCode::NOT_IMPLEMENTED, "unsupported_transfer_encoding").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_from_the_client_is_a_json_400_not_a_502() {
    let (door, _) = door().await;
    let addr = door.public_addr().unwrap();
    // A chunk size that is not hex, a chunk size past u64, a chunk longer than announced. The
    // head was valid, so it went to the target; the body's failure is the client's.
    let bodies: [&[u8]; 3] =
        [b"zz\r\nhello\r\n0\r\n\r\n", b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", b"3\r\nhello\r\n0\r\n\r\n"];
    for body in bodies {
        let request =
            [b"POST /tasks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(), body].concat();
        let (status, head, json) = raw(addr, &request).await;
        assert_refused(status, &head, &json, StatusCode::BAD_REQUEST, "malformed_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_fields_is_a_json_431() {
    let (door, _) = door().await;
    // Host and 100 more: one over the limit of 100.
    let cases = vec![("101 header fields", format!("GET /tasks HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(100, 1)).into())];
    assert_all_refused(&door, &cases, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too_many_headers").await;
    // 100 are within the front door's limit: forwarded (whatever the target makes of them).
    let before = task_requests(&door);
    let request = format!("GET /tasks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{}\r\n", fields(98, 1));
    let (_, head, json) = raw(door.public_addr().unwrap(), request.as_bytes()).await;
    assert_ne!(json["reason"], "too_many_headers", "{head}\n{json}");
    assert_eq!(task_requests(&door), before + 1, "{head}\n{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_section_too_large_is_a_json_400() {
    let (door, _) = door().await;
    let get =
        |headers: String| format!("GET /tasks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n").into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 17 KiB header line", get(fields(1, 17 * 1024))),
        ("a 17 KiB header line not yet ended", get(fields(1, 17 * 1024)).split_at(17 * 1024 + 30).0.to_vec()),
        ("a 70 KiB head of 14 KiB lines", get(fields(5, 14 * 1024))),
        ("a 66 KiB head not yet ended", get(fields(6, 11 * 1024)).split_at(66 * 1024).0.to_vec()),
    ];
    // The ALB's HTTP 400 for its header limits (the gateway's tighter ones answer 431).
    assert_all_refused(&door, &cases, StatusCode::BAD_REQUEST, "headers_too_large").await;
    // Lines just under 16 KiB, a head under 64 KiB: forwarded.
    let (status, head, _) = raw(door.public_addr().unwrap(), &get(fields(3, 16 * 1024 - 10))).await;
    assert_ne!(status, 400, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_target_too_long_is_a_json_414() {
    let (door, _) = door().await;
    let long = format!("/tasks?q={}", "a".repeat(17 * 1024));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 17 KiB request line", format!("GET {long} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()),
        ("a 17 KiB request line not yet ended", format!("GET {long}").into_bytes()),
    ];
    assert_all_refused(&door, &cases, StatusCode::URI_TOO_LONG, "uri_too_long").await;
    // A 16 000-byte target is within the 16 KiB request line: forwarded.
    let request = format!("GET /tasks?q={} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "a".repeat(16_000));
    let (status, head, json) = raw(door.public_addr().unwrap(), request.as_bytes()).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(json["target"], "task-1", "{json}");
}

/// The front door has no body limit, as the ALB has none for targets that are not Lambda
/// functions ("Troubleshoot your Application Load Balancers", HTTP 413): a large body reaches
/// the target, whose own 413 reaches the client (see `an_early_answer_of_the_target_reaches_the_client`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_the_targets_to_refuse() {
    let (door, _) = door().await;
    let mut request =
        format!("POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 1 << 20)
            .into_bytes();
    request.extend(std::iter::repeat_n(b'x', 1 << 20));
    let before = task_requests(&door);
    let (status, head, json) = raw(door.public_addr().unwrap(), &request).await;
    assert_eq!((status, &json["body_len"]), (200, &serde_json::json!(1 << 20)), "{head}");
    assert_eq!(task_requests(&door), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_head_after_good_ones_is_refused_in_its_place() {
    let (door, _) = door().await;
    let addr = door.public_addr().unwrap();
    let before = task_requests(&door);
    let text =
        raw_text(addr, b"GET /tasks/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /tasks/2 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
            .await;
    let second = text.find("HTTP/1.1 400 Bad Request").expect("the second request is answered 400");
    assert!(text[..second].starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text[..second].contains(r#""uri":"/tasks/1""#), "{text}");
    assert!(text[second..].contains(r#""reason":"malformed_request""#), "{text}");
    assert_eq!(task_requests(&door), before + 1, "only the good request reached the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_and_connect_are_a_json_405() {
    let (door, base) = door().await;
    let addr = door.public_addr().unwrap();
    // TRACE is not supported by the ALB; a 405 names what is (RFC 9110 section 15.5.6).
    let r = reqwest::Client::new()
        .request(reqwest::Method::TRACE, format!("{base}/tasks"))
        .header("x-request-id", "client-chosen-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_some_and(|v| v.to_str().unwrap().contains("GET")));
    assert_eq!(r.headers()["x-request-id"], "client-chosen-1", "a usable id of the client is kept");
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["reason"], "method_not_allowed", "{j}");
    // CONNECT is not tunnelled: a JSON 405 from the front door, never the target's answer.
    let before = task_requests(&door);
    for target in ["/tasks HTTP/1.1", "127.0.0.1:1 HTTP/1.1"] {
        let request = format!("CONNECT {target}\r\nHost: a\r\n\r\n");
        let (status, head, json) = raw(addr, request.as_bytes()).await;
        assert_refused(status, &head, &json, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(head.to_ascii_lowercase().contains("allow: "), "{head}");
    }
    assert_eq!(task_requests(&door), before, "CONNECT never reaches the target");
}

/// A client that closes its sending side before its body's end (fewer bytes than its
/// `Content-Length`, or no last chunk) sent an incomplete request (RFC 9112 section 8): it
/// reads a JSON 400, as for broken framing, not a bare close or a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_by_a_half_close_is_a_json_400() {
    let (door, _) = door().await;
    let cut: [&[u8]; 2] = [
        b"POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{\"t",
        b"POST /tasks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ];
    for request in cut {
        let (status, head, json) = raw_half_closed(door.public_addr().unwrap(), request).await;
        assert_refused(status, &head, &json, StatusCode::BAD_REQUEST, "malformed_request");
    }
}
