//! Requests only a raw socket sends: identity headers in every spelling, and malformed requests
//! that pingora answers itself before any of the gateway's phases run. The upstream is a probe
//! that records what the gateway forwards (what task-svc would receive).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::Value;
use testkit::harness::*;
use testkit::launch::KeyringSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP server that answers every request with the header lines it received, as
/// `[[name, value], ...]`, then `[":target", <the request target as received>]`, and counts
/// requests.
async fn start_probe() -> (SocketAddr, Arc<AtomicUsize>) {
    // Reading the body first makes a request with a broken body fail before anything answers.
    async fn echo(
        State(seen): State<Arc<AtomicUsize>>,
        uri: Uri,
        headers: HeaderMap,
        _body: axum::body::Bytes,
    ) -> Json<Vec<(String, String)>> {
        seen.fetch_add(1, Ordering::SeqCst);
        let mut lines: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        lines.push((":target".to_owned(), uri.to_string()));
        Json(lines)
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// The gateway in front of the probe, and what it needs to be ready: auth-svc for the
/// revocation list (tokens are minted with the gateway's own secret, so auth-svc is never asked
/// to validate one). Keep the whole tuple alive for the test.
pub(crate) async fn gateway_before_probe() -> (RunningService, Arc<AtomicUsize>, (RunningService, testkit::TestDatabase))
{
    let (probe, seen) = start_probe().await;
    let db = testkit::TestDatabase::new().await;
    let auth = start_auth(&db.url, OLD_SECRET, None).await;
    let gateway = start_gateway(test_sidecar(), probe, &auth.url(), KeyringSource::secret(OLD_SECRET), true).await;
    (gateway, seen, (auth, db))
}

/// What came back on one connection.
struct RawReply {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// The gateway closed the connection after answering (EOF or reset), within the deadline.
    closed: bool,
}

/// Writes `request` as is and reads until the gateway closes the connection or 10 s pass.
async fn exchange(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    // A reset after the answer still counts as closed; what was read before it is kept.
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await.is_ok();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body_start = head.len() + 4;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    RawReply { status, head: head.to_owned(), body: buf.get(body_start..).unwrap_or_default().to_vec(), closed }
}

/// `X_User_Id` → `x-user-id`: how the test recognises an identity header, independently of
/// `platform::identity`.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn is_identity_family(name: &str) -> bool {
    let n = canonical(name);
    ["x-user-", "x-auth-", "x-authenticated-"].iter().any(|p| n.starts_with(p))
        || ["x-forwarded-user", "x-remote-user", "remote-user"].contains(&n.as_str())
}

const SPOOFED: &[&str] = &[
    "X_User_Id: 1",
    "x_USER-id: 2",
    "X-User_Id: 3",
    "x-user-ID: 4",
    "X_USER_NAME: victim",
    "x-user_email: victim@example.com",
    "X-Authenticated_User: root",
    "X_AUTHENTICATED_USER: root",
    "X_Auth_User: root",
    "x-auth_token: t",
    "X_Forwarded_User: root",
    "X-Forwarded_User: root",
    "x_remote_user: root",
    "Remote_User: root",
    "REMOTE-USER: root",
];

fn spoofed_request(path: &str, token: Option<&str>) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for line in SPOOFED {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

#[tokio::test]
async fn no_spelling_of_an_identity_header_reaches_task_svc() {
    let (gateway, _, _auth) = gateway_before_probe().await;
    let token = mint(OLD_SECRET, 7, 600);
    for (path, token, expected_user) in [("/tasks", Some(token.as_str()), Some("7")), ("/tasks/health", None, None)] {
        let r = exchange(gateway.addr, &spoofed_request(path, token)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        let seen: Vec<(String, String)> = serde_json::from_slice(&r.body).unwrap();
        let identity: Vec<&(String, String)> = seen.iter().filter(|(n, _)| is_identity_family(n)).collect();
        let mut names: Vec<&str> = identity.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        match expected_user {
            // Only the gateway's own, once, from the verified token (the token's name and
            // email are not forwarded).
            Some(user) => {
                assert_eq!(names, ["x-user-id"], "{path}: {seen:?}");
                assert!(identity.contains(&&("x-user-id".to_owned(), user.to_owned())), "{seen:?}");
            }
            None => assert!(names.is_empty(), "{path}: {seen:?}"),
        }
    }
}

#[tokio::test]
async fn a_repeated_request_id_is_replaced_by_the_gateways_own_as_the_services_do() {
    let (gateway, _, _auth) = gateway_before_probe().await;
    let send = |ids: &[&str]| {
        let lines: String = ids.iter().map(|id| format!("X-Request-Id: {id}\r\n")).collect();
        format!("GET /tasks/health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n{lines}\r\n")
    };
    for (ids, kept) in [(&["client-id-1"][..], Some("client-id-1")), (&["client-id-1", "client-id-2"][..], None)] {
        let r = exchange(gateway.addr, send(ids).as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.head);
        let seen: Vec<(String, String)> = serde_json::from_slice(&r.body).unwrap();
        let forwarded: Vec<&str> = seen.iter().filter(|(n, _)| n == "x-request-id").map(|(_, v)| v.as_str()).collect();
        assert_eq!(forwarded.len(), 1, "one id reaches task-svc: {seen:?}");
        match kept {
            Some(id) => assert_eq!(forwarded[0], id),
            None => assert!(!ids.contains(&forwarded[0]) && forwarded[0].len() == 36, "{forwarded:?}"),
        }
        let answered =
            r.head.lines().find_map(|l| l.strip_prefix("x-request-id: ").or_else(|| l.strip_prefix("X-Request-Id: ")));
        assert_eq!(answered, Some(forwarded[0]), "{}", r.head);
    }
}

#[tokio::test]
async fn malformed_requests_get_a_json_400_and_a_closed_connection_and_never_reach_task_svc() {
    let (gateway, seen, _auth) = gateway_before_probe().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("duplicate Host", "GET /tasks/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into()),
        ("userinfo in Host", "GET /tasks/health HTTP/1.1\r\nHost: user@a\r\n\r\n".into()),
        ("absolute form naming another host", "GET http://a/tasks/health HTTP/1.1\r\nHost: b\r\n\r\n".into()),
        (
            "conflicting Content-Length",
            "POST /tasks/health HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into(),
        ),
        ("unparseable Content-Length", "POST /tasks/health HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\nab".into()),
        (
            "chunked not last",
            "POST /tasks/health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".into(),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST /tasks/health HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
        ("bare CR in a header", "GET /tasks/health HTTP/1.1\r\nHost: a\r\nX-A: 1\r\r\n\r\n".into()),
        ("space before the colon", "GET /tasks/health HTTP/1.1\r\nHost : a\r\n\r\n".into()),
        ("no request line", "HELLO\r\n\r\n".into()),
        ("a request line without a version", "GET /tasks/health\r\nHost: a\r\n\r\n".into()),
        ("a header line without a colon", "GET /tasks/health HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n".into()),
        // The request line (RFC 9112 section 3): single spaces, no whitespace in the target,
        // and a target in a form its method may use (section 3.2).
        ("two spaces before the target", "GET  /tasks/health HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("two spaces after the target", "GET /tasks/health  HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("a space in the target", "GET /tasks/health x HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        // Bytes outside what the `http` crate's `Uri` (and so hyper, axum and task-svc) takes in a
        // target: WHATWG's path and query sets.
        ("`<` in the path", "GET /tasks/<a HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("`>` in the query", "GET /tasks/health?q=a> HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("a backtick in the path", "GET /tasks/`a HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("a quote in the query", "GET /tasks/health?q=\"a\" HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("DEL in the target", "GET /tasks/\x7fa HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("a byte that is not UTF-8 in the target", b"GET /tasks/\xffa HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("a target that is not a path", "GET tasks/health HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("the asterisk form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("the authority form with GET", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        // Chunked applied twice (RFC 9112 section 6.1: a sender MUST NOT).
        (
            "chunked on two lines",
            "POST /tasks/health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
        (
            "chunked twice in one line",
            "POST /tasks/health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n".into(),
        ),
    ];
    // (More than 256 header fields: a limit, 431, see `pipelining_and_limits`.)
    for (name, request) in cases {
        let r = exchange(gateway.addr, &request).await;
        assert!(r.closed, "{name}: the connection stayed open (hang)");
        assert_json_refusal(name, &r, 400, "malformed_request");
    }
    // CONNECT is refused the same way, with 405.
    let r = exchange(gateway.addr, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").await;
    assert!(r.closed, "CONNECT: the connection stayed open");
    assert_json_refusal("CONNECT", &r, 405, "method_not_allowed");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing was forwarded");

    // The gateway still serves normally afterwards.
    let r = exchange(gateway.addr, b"GET /tasks/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// What the `http` crate's `Uri` takes beyond RFC 3986 (`"`, `{`, `}` in the path, for clients
/// that send JSON there; `\`, `^`, `|`; a backtick in the query; UTF-8) reaches task-svc byte for
/// byte, neither refused nor percent-encoded: the gateway, the front door (hyper) and task-svc
/// (axum) read a target with the same parser, so none of them sees another path than the next.
#[tokio::test]
async fn a_target_the_services_parse_is_forwarded_as_sent() {
    let (gateway, seen, _auth) = gateway_before_probe().await;
    let token = mint(OLD_SECRET, 7, 600);
    let sent_and_received = [
        ("/tasks/\"{a}\"", "/tasks/\"{a}\""),
        ("/tasks/a\\b^c|d", "/tasks/a\\b^c|d"),
        ("/tasks/health?q={a}|`^\\", "/tasks/health?q={a}|`^\\"),
        ("/tasks/\u{e9}t\u{e9}", "/tasks/\u{e9}t\u{e9}"),
    ];
    for (i, (target, forwarded)) in sent_and_received.into_iter().enumerate() {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        let r = exchange(gateway.addr, request.as_bytes()).await;
        assert_eq!(r.status, 200, "{target}: {}", r.head);
        let lines: Vec<(String, String)> = serde_json::from_slice(&r.body).unwrap();
        let received = lines.iter().find(|(n, _)| n == ":target").map(|(_, v)| v.as_str());
        assert_eq!(received, Some(forwarded), "{target}: {lines:?}");
        assert_eq!(seen.load(Ordering::SeqCst), i + 1);
    }
}

/// The gateway's own refusal: `status`, the contract's JSON body with `reason`, a request id.
fn assert_json_refusal(name: &str, r: &RawReply, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{name}: {}", r.head);
    let head = r.head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{name}: {}", r.head);
    assert!(head.contains("x-request-id:"), "{name}: {}", r.head);
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{name}: not JSON: {}", r.head));
    let phrase = axum::http::StatusCode::from_u16(status).unwrap().canonical_reason().unwrap();
    assert_eq!(body["error"], phrase, "{name}: {body}");
    assert_eq!(body["reason"], reason, "{name}: {body}");
}

#[tokio::test]
async fn a_body_with_broken_chunked_framing_gets_our_json_400() {
    let (gateway, _, _auth) = gateway_before_probe().await;
    // The head is valid, so the gateway's phases run; the body framing breaks while it is read.
    let r = exchange(
        gateway.addr,
        b"POST /tasks/health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(r.closed, "the connection stayed open");
    assert_eq!(r.status, 400, "{}", r.head);
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{}", r.head));
    assert_eq!(body["error"], "Bad Request");
    assert_eq!(body["reason"], "malformed_request", "{body}");
    assert!(r.head.to_ascii_lowercase().contains("x-request-id:"), "{}", r.head);
    // A client's fault is its access line, not an ERROR line quoting its bytes.
    let text = log_once(&gateway, "the refused request's access line", |t| {
        t.lines().any(|l| l.contains("malformed") || l.contains("status=400"))
    })
    .await;
    assert!(!text.contains("ERROR") && !text.contains("Fail to proxy"), "{text}");
}
