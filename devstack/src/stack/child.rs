//! The stack's parts: a child process and how to start it again ([`Child`]), a task's pair of
//! processes ([`TaskPair`]), the internal ports ([`Ports`]) and the run directory ([`RunDir`]).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::generate_secret;
use crate::launch::Launch;
use crate::logs::LogSink;
use crate::postgres::free_port;
use crate::process::{Output, Process};

/// One child process and how to start it again.
pub(super) struct Child {
    launch: Launch,
    pub(super) addr: SocketAddr,
    pub(super) metrics: SocketAddr,
    pub(super) process: Option<Process>,
}

impl Child {
    pub(super) fn new(launch: Launch, addr: SocketAddr, metrics: SocketAddr, logs: &LogSink) -> Self {
        Self { launch: launch.output(Output::Prefixed(logs.clone())), addr, metrics, process: None }
    }

    pub(super) fn name(&self) -> &str {
        &self.launch.name
    }

    pub(super) fn spawn(&mut self, logs: &LogSink) -> Result<()> {
        let process = self.launch.spawn()?;
        logs.line("devstack", &format!("started {} (pid {}) on {}", self.name(), process.pid(), self.addr));
        self.process = Some(process);
        Ok(())
    }

    pub(super) async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let Some(process) = self.process.as_mut() else { bail!("{} is not running", self.launch.name) };
        self.launch.wait_ready(process, timeout).await
    }

    pub(super) fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }
}

/// One ECS task of the task service: task-svc and its gateway sidecar.
pub(super) struct TaskPair {
    pub(super) svc: Child,
    pub(super) gateway: Child,
}

/// Internal ports: consecutive from `--base-port`, or free ones.
pub(super) struct Ports {
    next: Option<u16>,
    pub(super) used: HashSet<u16>,
}

impl Ports {
    /// Consecutive ports from `base` (`--base-port`), or free ones when `None`.
    pub(super) fn new(base: Option<u16>) -> Self {
        Self { next: base, used: HashSet::new() }
    }

    /// The next port; `what` names it in the error when a `--base-port` port is taken.
    pub(super) fn take(&mut self, what: &str) -> Result<u16> {
        match self.next.as_mut() {
            Some(next) => {
                let port = *next;
                *next = next.checked_add(1).context("--base-port leaves too few ports below 65536")?;
                if StdListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                    bail!("127.0.0.1:{port} ({what}) is already in use; choose another --base-port");
                }
                Ok(port)
            }
            None => loop {
                // Ports picked one after another can repeat; the set keeps them distinct.
                let port = free_port()?;
                if self.used.insert(port) {
                    return Ok(port);
                }
            },
        }
    }
}

/// Removes a temporary run directory when dropped (last field of [`Stack`](super::Stack)).
pub(super) struct RunDir {
    pub(super) path: PathBuf,
    pub(super) remove: bool,
}

impl RunDir {
    /// `data_dir` (`--data-dir`, kept), or a new temporary directory removed on drop.
    pub(super) fn create(data_dir: Option<&std::path::Path>) -> Result<Self> {
        match data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
                Ok(RunDir { path: std::fs::canonicalize(dir)?, remove: false })
            }
            None => {
                let path =
                    std::env::temp_dir().join(format!("devstack-{}-{}", std::process::id(), &generate_secret()[..8]));
                std::fs::create_dir_all(&path)?;
                Ok(RunDir { path, remove: true })
            }
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
