//! The `healthcheck` subcommand: ECS container health checks run it inside images that have no
//! shell or curl. It sends `GET path` to the local port and exits 0 only on a 200.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Probes `http://addr{path}` once; true when the status line says 200.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: healthcheck\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 32];
        let n = stream.read(&mut head).await.ok()?;
        let line = std::str::from_utf8(&head[..n]).ok()?;
        Some(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

/// Runs the probe on a small runtime and turns the answer into an exit code.
pub fn run(addr: SocketAddr, path: &str) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return ExitCode::FAILURE;
    };
    if rt.block_on(probe(addr, path, Duration::from_secs(3))) {
        ExitCode::SUCCESS
    } else {
        eprintln!("healthcheck: GET http://{addr}{path} did not answer 200");
        ExitCode::FAILURE
    }
}

/// The address to probe for a service bound to `bind`: a wildcard bind is probed on loopback.
pub fn local_addr(bind: std::net::IpAddr, port: u16) -> SocketAddr {
    let ip = if bind.is_unspecified() { std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) } else { bind };
    SocketAddr::new(ip, port)
}
