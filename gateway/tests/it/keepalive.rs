//! Keep-alive on both sides of the gateway.
//!
//! Downstream (`server.keepalive_timeout_secs`): an idle keep-alive connection from the ALB is
//! kept open at least that long and closed by the gateway after it. Run with a 3 s timeout
//! instead of the default 75 s (the relation to the ALB's idle timeout is checked in ecs/tests).
//! pingora 0.9.1 on its own would keep the connection forever after its first request, so the
//! "closed after" half fails without the setting.
//!
//! Upstream (`upstream.idle_timeout_secs`, `upstream.keepalive_pool_size`): a pooled connection
//! to task-svc that stays idle is closed by the gateway after that long, and a pool that is full
//! closes the least recently used one at once. A stand-in for task-svc reports when each
//! connection opens, serves and closes. pingora on its own keeps an idle connection until
//! task-svc closes it (which task-svc never does) and pools 128 per thread, so each test fails
//! without its setting.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway::config::SidecarFile;
use testkit::free_port;
use testkit::launch::{GatewaySettings, KeyringSource, Probe, loopback};
use testkit::process::{Output, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const KEEPALIVE_SECS: u64 = 3;
const UPSTREAM_IDLE_SECS: u64 = 2;
const SECRET: &str = "keepalive-secret-0123456789abcdef0123456789";

/// Starts the gateway with `sidecar` in front of `upstream`; returns it and its proxy address.
/// Ready once both ports accept (no request reaches `upstream`). There is no auth-svc, so
/// `/ready` stays 503 (no revocation list) and tokens get 503; these tests need neither: they
/// use the public health route and token-less requests. The fixed keyring is loaded before
/// the ports open.
async fn start_gateway(sidecar: SidecarFile, upstream: SocketAddr, name: &str) -> (Process, SocketAddr) {
    let listen = loopback(free_port().unwrap());
    let metrics = loopback(free_port().unwrap());
    let dir = testkit::harness::log_dir();
    let settings = GatewaySettings {
        ready: vec![Probe::Tcp(metrics), Probe::Tcp(listen)],
        ..GatewaySettings::new(
            sidecar,
            dir.join(format!("{name}-{}.toml", listen.port())),
            listen,
            metrics,
            upstream,
            format!("http://{}", loopback(9)),
            KeyringSource::secret(SECRET),
        )
    };
    let process = settings
        .launch("gateway", Path::new(env!("CARGO_BIN_EXE_gateway")))
        .unwrap()
        .output(Output::File(testkit::harness::log_file(&format!("gateway-{name}"), listen.port())))
        .start(Duration::from_secs(30))
        .await
        .unwrap();
    (process, listen)
}

/// One gateway worker thread and no shutdown grace: what every test here varies from.
fn sidecar() -> SidecarFile {
    let mut sidecar = SidecarFile::default();
    sidecar.server.threads = 1;
    sidecar.shutdown.grace_period_secs = 0;
    sidecar
}

/// Reads one HTTP/1.1 response (head plus a Content-Length body) and returns its status.
fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed inside a response: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

fn request(stream: &mut TcpStream) -> u16 {
    // No token: the gateway answers 401 itself, no upstream needed.
    stream.write_all(b"GET /tasks HTTP/1.1\r\nHost: gateway\r\n\r\n").unwrap();
    read_response(stream)
}

#[tokio::test]
async fn idle_keepalive_connections_live_for_the_configured_timeout_then_close() {
    let mut sidecar = sidecar();
    sidecar.server.keepalive_timeout_secs = KEEPALIVE_SECS;
    // No task-svc behind it: the requests are answered 401 by the gateway itself.
    let (mut gateway, listen) = start_gateway(sidecar, loopback(9), "keepalive").await;
    let port = listen.port();

    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(loopback(port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(KEEPALIVE_SECS * 5))).unwrap();
        assert_eq!(request(&mut stream), 401);
        // Idle for half the timeout: the same connection still serves a request.
        std::thread::sleep(Duration::from_millis(KEEPALIVE_SECS * 500));
        assert_eq!(request(&mut stream), 401, "connection closed before the keep-alive timeout");
        // Then idle until the gateway closes it (EOF), which must not come early.
        let idle_since = Instant::now();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        (read.map_err(|e| e.kind()), idle_since.elapsed())
    })
    .await
    .unwrap();
    gateway.kill();
    let (read, idle) = outcome;
    assert_eq!(read, Ok(0), "expected the gateway to close the idle connection (EOF), got {read:?} after {idle:?}");
    assert!(
        idle >= Duration::from_millis(KEEPALIVE_SECS * 1000 - 300),
        "closed after {idle:?}, before the {KEEPALIVE_SECS} s keep-alive timeout"
    );
    assert!(idle < Duration::from_secs(KEEPALIVE_SECS * 4), "closed only after {idle:?}");
}

/// What the stand-in for task-svc saw, by connection number (in accept order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Accepted(usize),
    Request(usize),
    /// The gateway closed the connection (EOF), at that instant.
    Closed(usize, Instant),
}

/// A stand-in for task-svc: answers every request head with `200 ok` on a keep-alive connection
/// and reports what it sees. Requests carry no body (GETs). The first `together` requests are
/// answered only once all of them have arrived, so they are in flight at the same time.
async fn upstream(together: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, events) = mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Barrier::new(together.max(1)));
    let requests = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        for n in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (seen, gate, requests) = (seen.clone(), gate.clone(), requests.clone());
            seen.send(Seen::Accepted(n)).unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let read = stream.read(&mut buf).await.unwrap_or(0);
                    if read == 0 {
                        let _ = seen.send(Seen::Closed(n, Instant::now()));
                        return;
                    }
                    head.extend_from_slice(&buf[..read]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        let _ = seen.send(Seen::Request(n));
                        if requests.fetch_add(1, Ordering::Relaxed) < together {
                            gate.wait().await;
                        }
                        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                    }
                }
            });
        }
    });
    (addr, events)
}

/// The next thing the stand-in sees, failing after `within`.
async fn next(events: &mut mpsc::UnboundedReceiver<Seen>, within: Duration) -> Seen {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("the upstream saw nothing more within {within:?}"))
        .unwrap()
}

/// `GET /tasks/health` through the gateway (a public route: forwarded without a token). One
/// `client` per test keeps its connections to the gateway open, as the ALB does: a client that
/// closes right after the response can make pingora drop the upstream connection instead of
/// pooling it (the downstream half ends in an error), which is not what these tests are about.
async fn health(client: &reqwest::Client, listen: SocketAddr) {
    let r = client.get(format!("http://{listen}/tasks/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn an_idle_pooled_upstream_connection_is_closed_after_the_configured_idle_timeout() {
    let (task_svc, mut seen) = upstream(0).await;
    let mut sidecar = sidecar();
    sidecar.upstream.idle_timeout_secs = UPSTREAM_IDLE_SECS;
    let (mut gateway, listen) = start_gateway(sidecar, task_svc, "upstream-idle").await;
    let client = reqwest::Client::new();

    health(&client, listen).await;
    let answered = Instant::now();
    assert_eq!(next(&mut seen, Duration::from_secs(5)).await, Seen::Accepted(0));
    assert_eq!(next(&mut seen, Duration::from_secs(5)).await, Seen::Request(0));
    // Idle in the gateway's pool from about `answered` on, until the gateway closes it.
    let closed = next(&mut seen, Duration::from_secs(UPSTREAM_IDLE_SECS * 5)).await;
    gateway.kill();
    let Seen::Closed(0, at) = closed else { panic!("expected connection 0 to close, saw {closed:?}") };
    let idle = at.duration_since(answered);
    assert!(
        idle >= Duration::from_millis(UPSTREAM_IDLE_SECS * 1000 - 100),
        "closed after {idle:?}, before the {UPSTREAM_IDLE_SECS} s idle timeout"
    );
    assert!(idle < Duration::from_secs(UPSTREAM_IDLE_SECS + 2), "closed only after {idle:?}");
}

#[tokio::test]
async fn a_full_upstream_pool_closes_its_least_recently_used_connection() {
    let (task_svc, mut seen) = upstream(2).await;
    let mut sidecar = sidecar();
    sidecar.upstream.keepalive_pool_size = 1;
    let (mut gateway, listen) = start_gateway(sidecar, task_svc, "upstream-pool").await;
    let client = reqwest::Client::new();

    // Two requests in flight at once: two connections, both released into a pool of one.
    tokio::join!(health(&client, listen), health(&client, listen));
    let mut opened = Vec::new();
    while opened.len() < 2 {
        if let Seen::Accepted(n) = next(&mut seen, Duration::from_secs(5)).await {
            opened.push(n);
        }
    }
    // One of them is closed at once, long before the idle timeout (60 s): the pool is full.
    let closed = loop {
        match next(&mut seen, Duration::from_secs(5)).await {
            Seen::Closed(n, _) => break n,
            Seen::Request(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    // The other one stayed pooled: the next request reuses it, no new connection.
    health(&client, listen).await;
    let kept = 1 - closed;
    assert_eq!(next(&mut seen, Duration::from_secs(5)).await, Seen::Request(kept));
    gateway.kill();
}
