//! [`RunningService`]: a process the launcher started, with where to reach it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Launch;
use crate::process::Process;

/// A started process of the system (or of the bench's harness) and its addresses: what the
/// bench and the test harnesses hold for each process they run. The process is killed when
/// this is dropped.
#[derive(Debug)]
pub struct RunningService {
    /// Its name in logs and reports (`auth-svc`, `gateway-uds`).
    pub name: &'static str,
    pub process: Process,
    /// Where its traffic goes.
    pub addr: SocketAddr,
    /// Its Prometheus listener, when it has one.
    pub metrics: Option<SocketAddr>,
    /// Spawn to ready: every readiness check of its [`Launch`] passed.
    pub ready: Duration,
}

impl RunningService {
    /// Starts `launch` ([`Launch::start`]) and times it.
    pub async fn start(
        name: &'static str,
        launch: &Launch,
        addr: SocketAddr,
        metrics: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self> {
        let start = Instant::now();
        let process = launch.start(timeout).await?;
        Ok(Self { name, process, addr, metrics, ready: start.elapsed() })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr><path>`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://<metrics addr><path>`; `None` without a metrics listener.
    pub fn metrics_url(&self, path: &str) -> Option<String> {
        self.metrics.map(|m| format!("http://{m}{path}"))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
