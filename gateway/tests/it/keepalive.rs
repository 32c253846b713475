//! The downstream keep-alive timeout (`server.keepalive_timeout_secs`): an idle keep-alive
//! connection from the ALB is kept open at least that long and closed by the gateway after it.
//! Run with a 3 s timeout instead of the default 75 s (the relation to the ALB's idle timeout is
//! checked in ecs/tests). pingora 0.9.1 on its own would keep the connection forever after its
//! first request, so the "closed after" half fails without the setting.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway::config::SidecarFile;
use testkit::free_port;
use testkit::launch::{GatewaySettings, KeyringSource, Probe, loopback};
use testkit::process::Output;

const KEEPALIVE_SECS: u64 = 3;
const SECRET: &str = "keepalive-secret-0123456789abcdef0123456789";

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
    let port = free_port().unwrap();
    let metrics = loopback(free_port().unwrap());
    let dir = std::env::temp_dir().join("gateway-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sidecar = SidecarFile::default();
    sidecar.server.threads = 1;
    sidecar.server.keepalive_timeout_secs = KEEPALIVE_SECS;
    sidecar.shutdown.grace_period_secs = 0;
    let nowhere = loopback(9);
    let settings = GatewaySettings {
        // No task-svc behind it: ready once the keyring is loaded and the port accepts.
        ready: vec![Probe::http(metrics, "/ready"), Probe::Tcp(loopback(port))],
        ..GatewaySettings::new(
            sidecar,
            dir.join(format!("keepalive-{port}.toml")),
            loopback(port),
            metrics,
            nowhere,
            format!("http://{nowhere}"),
            KeyringSource::secret(SECRET),
        )
    };
    let mut gateway = settings
        .launch("gateway", Path::new(env!("CARGO_BIN_EXE_gateway")))
        .unwrap()
        .output(Output::File(dir.join(format!("gateway-keepalive-{port}.log"))))
        .start(Duration::from_secs(30))
        .await
        .unwrap();

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
