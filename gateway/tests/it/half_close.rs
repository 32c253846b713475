//! A client that closes its sending side (TCP FIN, `shutdown(SHUT_WR)`) while it still reads.
//! After a whole request this is allowed (RFC 9112 section 9.6; `nc`, and scripts that pipe a
//! request in, do it): the request is forwarded and its answer delivered, as HAProxy does by
//! default (its `option abortonclose` is off). Before the body's end the request is
//! incomplete (RFC 9112 section 8): it is not answered by the upstream, and the client gets the
//! contract's JSON 400, not a bare close. Before its head's end there is nothing to answer,
//! and the gateway's log has no ERROR line for it (the client's doing).

use std::time::Duration;

use serde_json::Value;
use testkit::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the gateway sends on `stream` until it closes, within 10 s.
async fn read_until_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the gateway answered and closed within 10 s")
        .expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

/// [`read_until_close`] as one answer: status line, head and body (parsed as JSON).
async fn answer_until_close(stream: &mut TcpStream) -> (String, String, Value) {
    let text = read_until_close(stream).await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no whole answer: {text:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not one JSON body ({e}): {text:?}"));
    (status, head.to_ascii_lowercase(), json)
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (token, _) = login(&stack.auth, "halfclose").await;
    let task = create_task(&stack.gateway, &token, "read after a FIN").await;
    let id = task["id"].as_i64().unwrap();

    for (method, body) in [("GET", ""), ("PUT", r#"{"status":"completed"}"#)] {
        let mut client = TcpStream::connect(stack.gateway.addr).await.unwrap();
        let request = format!(
            "{method} /tasks/{id} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(request.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let (status, _, json) = answer_until_close(&mut client).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{method}: {json}");
        assert_eq!(json["task"]["id"], id, "{method}: {json}");
    }
    // Two requests pipelined, then the FIN: both answered, in order (RFC 9112 section 9.3.2).
    let mut pipelined = TcpStream::connect(stack.gateway.addr).await.unwrap();
    let get = format!("GET /tasks/{id} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\r\n");
    let health = "GET /tasks/health HTTP/1.1\r\nHost: gateway\r\n\r\n";
    pipelined.write_all(format!("{get}{health}").as_bytes()).await.unwrap();
    pipelined.shutdown().await.unwrap();
    let text = read_until_close(&mut pipelined).await;
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i..i + 12]).collect();
    assert_eq!(statuses, ["HTTP/1.1 200", "HTTP/1.1 200"], "{text}");
    let task_at = text.find(&format!("\"id\":{id}")).unwrap_or_else(|| panic!("the task: {text}"));
    let health_at = text.find("\"healthy\"").unwrap_or_else(|| panic!("the health answer: {text}"));
    assert!(task_at < health_at, "answered in order: {text}");

    // The PUT went through.
    let r = client().get(stack.gateway.url_for(&format!("/tasks/{id}"))).bearer_auth(&token).send().await.unwrap();
    let json: Value = r.json().await.unwrap();
    assert_eq!(json["task"]["status"], "completed", "{json}");
}

#[tokio::test]
async fn a_client_that_half_closes_before_its_body_ends_gets_a_json_400_and_nothing_is_written() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let (token, _) = login(&stack.auth, "halfbody").await;
    let task = create_task(&stack.gateway, &token, "unchanged").await;
    let id = task["id"].as_i64().unwrap();

    let full = br#"{"title":"changed by half a body"}"#;
    // A Content-Length body cut after 3 bytes and after all but 1, and a chunked body whose
    // last chunk never comes; each as the head's send and as a later one.
    let length_head = |n: usize| {
        format!(
            "PUT /tasks/{id} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
        )
    };
    let chunked_head = format!(
        "PUT /tasks/{id} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = format!("{:x}\r\n{}\r\n", full.len(), String::from_utf8_lossy(full));
    let cases: [(&str, String, Vec<u8>); 3] = [
        ("3 of its Content-Length bytes", length_head(full.len()), full[..3].to_vec()),
        ("all but 1 of its Content-Length bytes", length_head(full.len()), full[..full.len() - 1].to_vec()),
        ("a chunk but no last chunk", chunked_head, chunk.into_bytes()),
    ];
    for (case, head, body) in cases {
        for separate_sends in [false, true] {
            let mut client = TcpStream::connect(stack.gateway.addr).await.unwrap();
            if separate_sends {
                client.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                client.write_all(&body).await.unwrap();
            } else {
                client.write_all(&[head.as_bytes(), &body].concat()).await.unwrap();
            }
            client.shutdown().await.unwrap();
            let (status, head, json) = answer_until_close(&mut client).await;
            let what = format!("{case}, separate sends {separate_sends}");
            assert_eq!(status, "HTTP/1.1 400 Bad Request", "{what}: {json}");
            assert_eq!(json["error"], "Bad Request", "{what}: {json}");
            assert_eq!(json["reason"], "malformed_request", "{what}: {json}");
            assert!(json["message"].as_str().unwrap().contains("ended before"), "{what}: {json}");
            assert!(head.contains("\r\nx-request-id: "), "{what}: {head}");
        }
    }
    let r = client().get(stack.gateway.url_for(&format!("/tasks/{id}"))).bearer_auth(&token).send().await.unwrap();
    let json: Value = r.json().await.unwrap();
    assert_eq!(json["task"]["title"], "unchanged", "no cut body was applied: {json}");
}

#[tokio::test]
async fn a_client_that_leaves_mid_head_is_not_an_error_in_the_log() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    // A few bytes of a head, then a close (FIN) or an abort (RST).
    for linger_zero in [false, true] {
        let mut client = TcpStream::connect(stack.gateway.addr).await.unwrap();
        client.write_all(b"GET /tasks/health HTTP/1.1\r\nHo").await.unwrap();
        if linger_zero {
            client.set_zero_linger().unwrap();
        }
        drop(client);
    }
    // Lines are written in order: once a later request's access line is in, the earlier
    // connections' lines (if any) are too.
    let r = client()
        .get(stack.gateway.url_for("/tasks/health"))
        .header("x-request-id", "after-partial-heads")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text =
        log_once(&stack.gateway, "the access line of the later request", |t| t.contains("after-partial-heads")).await;
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "a client's own close logged as an error: {errors:#?}");
}
