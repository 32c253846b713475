//! How a request's head and body reach the upstream. When the first piece of a `Content-Length`
//! body came with the client's head, the gateway's pingora writes the head and that piece in
//! one vectored write instead of two sends (vendor/pingora-core/README.md). A head whose body
//! has not come yet, and a request with `Expect` (the server may answer it before the body
//! comes), are sent at once. Every body arrives whole either way.

use std::net::SocketAddr;
use std::time::Duration;

use testkit::accounts::mint;
use testkit::database::TestDatabase;
use testkit::harness::*;
use testkit::launch::KeyringSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the upstream saw of one request: the bytes of each read, in order.
type Reads = Vec<Vec<u8>>;

/// The end of the head in `buf` and the `Content-Length` it announces, once the head is in.
fn head_and_length(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    Some((end, length))
}

/// Reads requests off one connection; reports every read as it happens on `each_read`, and
/// answers `200 {}` once a whole request (head and body) is in.
async fn serve(mut stream: TcpStream, each_read: mpsc::UnboundedSender<Vec<u8>>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let _ = each_read.send(chunk[..n].to_vec());
            }
        }
        if let Some((end, length)) = head_and_length(&buf)
            && buf.len() >= end + length
        {
            buf.drain(..end + length);
            if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await.is_err() {
                return;
            }
        }
    }
}

/// The upstream above, and a gateway in front of it whose revocation list comes from a real
/// auth-svc (requests with a token wait for that list).
async fn start() -> (TestDatabase, RunningService, RunningService, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (upstream, rx) = start_upstream().await;
    let db = TestDatabase::new().await;
    let auth = start_auth(&db.url, OLD_SECRET, None).await;
    let gateway = start_gateway(test_sidecar(), upstream, &auth.url(), KeyringSource::secret(OLD_SECRET), true).await;
    (db, auth, gateway, rx)
}

async fn start_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, tx.clone()));
        }
    });
    (addr, rx)
}

/// `PUT /tasks/7`'s head with a bearer token and `extra` header lines, announcing `length` bytes.
fn put_head(extra: &str, length: usize) -> String {
    let token = mint(OLD_SECRET, 7, 300);
    format!(
        "PUT /tasks/7 HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
}

/// `reads` and the upstream's reads after them until a whole request is in, waiting at most
/// 10 s for each.
async fn until_whole(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>, mut reads: Reads) -> Reads {
    loop {
        let all: Vec<u8> = reads.concat();
        if head_and_length(&all).is_some_and(|(end, length)| all.len() >= end + length) {
            return reads;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        reads.push(read.expect("the upstream got the rest of the request within 10 s").expect("upstream running"));
    }
}

/// The client's answer on `stream`: its status line.
async fn status_line(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the gateway closed the connection: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_owned()
}

fn body(size: usize) -> Vec<u8> {
    let mut body = format!("{{\"title\":\"{}\"}}", "t".repeat(size - 12)).into_bytes();
    body.truncate(size);
    body
}

#[tokio::test]
async fn a_body_that_came_with_its_head_reaches_the_upstream_in_the_same_send() {
    let (_db, _auth, gateway, mut rx) = start().await;
    let mut client = TcpStream::connect(gateway.addr).await.unwrap();
    // Twenty requests on one connection, each sent as one write by the client: every one must
    // reach the upstream in one read. Sent in two writes, a head and its body can still land in
    // one read when the upstream is slow to wake; twenty in a row cannot.
    for i in 0..20 {
        let body = body(100 + i);
        let mut request = put_head("", body.len()).into_bytes();
        request.extend_from_slice(&body);
        client.write_all(&request).await.unwrap();
        let reads = until_whole(&mut rx, Reads::new()).await;
        let first = String::from_utf8_lossy(&reads[0]).into_owned();
        assert!(first.starts_with("PUT /tasks/7 HTTP/1.1\r\n"), "{first}");
        assert!(
            reads.len() == 1 && reads[0].ends_with(&body),
            "request {i}: head and body in one read, got {} reads; the first: {first:?}",
            reads.len()
        );
        assert_eq!(status_line(&mut client).await, "HTTP/1.1 200 OK");
    }

    // A body larger than the write buffer still arrives whole, in order, after its head.
    let big = self::body(8000);
    let mut request = put_head("", big.len()).into_bytes();
    request.extend_from_slice(&big);
    client.write_all(&request).await.unwrap();
    let all = until_whole(&mut rx, Reads::new()).await.concat();
    let (end, length) = head_and_length(&all).unwrap();
    assert_eq!(length, big.len());
    assert!(all[end..] == big[..], "the 8,000-byte body changed on the way");
    assert_eq!(status_line(&mut client).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn a_slow_clients_head_is_sent_at_once_and_its_body_when_it_comes() {
    let (_db, _auth, gateway, mut rx) = start().await;
    let mut client = TcpStream::connect(gateway.addr).await.unwrap();
    // The head alone: the upstream gets it without waiting for the body, so a client that
    // stalls is timed out by the upstream as before, not held at the gateway.
    let body = body(100);
    client.write_all(put_head("", body.len()).as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while head_and_length(&got).is_none() {
        let read = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        got.extend(
            read.expect("the head reached the upstream without its body within 10 s").expect("upstream running"),
        );
    }
    let head_end = got.len();
    assert!(String::from_utf8_lossy(&got).ends_with("\r\n\r\n"), "only the head was sent");
    client.write_all(&body).await.unwrap();
    let all = until_whole(&mut rx, vec![got]).await.concat();
    assert!(all[head_end..] == body[..], "the body arrived after the head, whole");
    assert_eq!(status_line(&mut client).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn a_request_with_expect_has_its_head_sent_before_its_body() {
    let (_db, _auth, gateway, mut rx) = start().await;
    let mut client = TcpStream::connect(gateway.addr).await.unwrap();

    let body = body(100);
    let head = put_head("Expect: 100-continue\r\n", body.len());
    client.write_all(head.as_bytes()).await.unwrap();
    // The head reaches the upstream with no body sent yet.
    let mut got = Vec::new();
    while head_and_length(&got).is_none() {
        let read = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        got.extend(read.expect("the head reached the upstream before its body within 10 s").expect("upstream running"));
    }
    let head_end = got.len();
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("put /tasks/7 http/1.1\r\n") && text.contains("\r\nexpect: 100-continue\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "only the head was sent: {text}");

    client.write_all(&body).await.unwrap();
    let all = until_whole(&mut rx, vec![got]).await.concat();
    assert!(all[head_end..] == body[..], "the body arrived after the head, whole");
    let status = status_line(&mut client).await;
    assert!(status == "HTTP/1.1 200 OK" || status == "HTTP/1.1 100 Continue", "{status}");
}
