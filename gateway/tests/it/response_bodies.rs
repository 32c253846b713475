//! Response bodies of every size reach the client intact, whether they arrive with the response
//! head or in later pieces. The gateway's pingora-core sizes the buffer for an upstream body to
//! its `Content-Length` (vendor/pingora-core/README.md); these are the cases that change touches:
//! a body that fits the first read, and bodies that need more reads, below and above 64 KiB.

use std::net::SocketAddr;
use std::time::Duration;

use testkit::harness::*;
use testkit::launch::KeyringSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body for `size`: bytes that differ along the body, so a lost or repeated piece shows.
fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 23) as u8).collect()
}

/// Answers `GET /tasks/health?size=N&split=S` with an N-byte body: the head and the first S
/// bytes in one write, the rest in 3 more writes 20 ms apart.
async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let query = head.split(' ').nth(1).and_then(|t| t.split_once('?')).map_or("", |(_, q)| q).to_owned();
        let param = |name: &str| -> usize {
            query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok()).unwrap_or(0)
        };
        let (size, split) = (param("size"), param("split"));
        let body = body(size);
        let split = split.min(size);
        let mut first = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
        first.extend_from_slice(&body[..split]);
        if stream.write_all(&first).await.is_err() {
            return;
        }
        let rest = &body[split..];
        for piece in rest.chunks(rest.len().div_ceil(3).max(1)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
    }
}

async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

#[tokio::test]
async fn response_bodies_arrive_intact_in_one_piece_or_several() {
    let upstream = start_upstream().await;
    // The public route needs no token, so no auth-svc is needed either.
    let gateway =
        start_gateway(test_sidecar(), upstream, "http://127.0.0.1:9", KeyringSource::secret(OLD_SECRET), false).await;
    let c = client();
    // (size, bytes sent with the head): all at once, then split, around the 64 KiB read size.
    let cases =
        [(0, 0), (38, 38), (38, 10), (5000, 5000), (5000, 100), (65_536, 1000), (70_000, 70_000), (300_000, 10)];
    // Twice over the same connections: a buffer sized for one response must not leak into the next.
    for round in 0..2 {
        for (size, split) in cases {
            let url = format!("{}/tasks/health?size={size}&split={split}", gateway.url());
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "round {round}, size {size}, split {split}");
            let got = r.bytes().await.unwrap();
            assert_eq!(got.len(), size, "round {round}, size {size}, split {split}");
            assert!(got[..] == body(size)[..], "round {round}, size {size}, split {split}: the body changed");
        }
    }
}
