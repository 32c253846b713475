//! A process to start ([`Launch`]): program, arguments, environment ([`Env`]), output, and the
//! readiness checks ([`Probe`]) that say it is up. The typed settings in [`super`] produce one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{LogFormat, Logging};
use crate::process::{Output, Process};

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET http://addr{path}` answers 200.
    Http { addr: SocketAddr, path: String },
    /// Something accepts TCP connections on `addr`.
    Tcp(SocketAddr),
}

impl Probe {
    pub fn http(addr: SocketAddr, path: &str) -> Self {
        Probe::Http { addr, path: path.to_owned() }
    }

    async fn passes(&self) -> bool {
        match self {
            Probe::Http { addr, path } => platform::healthcheck::probe(*addr, path, Duration::from_millis(500)).await,
            Probe::Tcp(addr) => tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok()),
        }
    }
}

/// Environment changes for a child: variables set, and variables removed so that a stray
/// value in the parent's environment cannot reach the child.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub(super) set: Vec<(String, String)>,
    pub(super) unset: Vec<String>,
}

impl Env {
    /// Sets `key` (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: &str) {
        self.unset.retain(|k| k != key);
        match self.set.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.set.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Removes `key` from the child's environment.
    pub fn unset(&mut self, key: &str) {
        self.set.retain(|(k, _)| k != key);
        if !self.unset.iter().any(|k| k == key) {
            self.unset.push(key.to_owned());
        }
    }

    pub(super) fn set_or_unset(&mut self, key: &str, value: Option<impl ToString>) {
        match value {
            Some(v) => self.set(key, &v.to_string()),
            None => self.unset(key),
        }
    }

    /// The value `key` will have, if set here.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.set.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Env {
    /// Names only: values can be secrets (JWT_SECRET, DATABASE_URL).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("set", &self.set.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("unset", &self.unset)
            .finish()
    }
}

/// A process to start: program, arguments, environment, where its output goes, and what
/// "ready" means. Cheap to keep, so a crashed child can be started again the same way.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Env,
    pub ready: Vec<Probe>,
    /// Pause between failed readiness checks.
    pub poll: Duration,
    pub output: Output,
}

impl Launch {
    /// `program` with no arguments, the parent's environment, output inherited, ready at once.
    pub fn new(name: &str, program: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Env::default(),
            ready: Vec::new(),
            poll: Duration::from_millis(10),
            output: Output::Inherit,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one variable: the escape hatch for settings that have no typed field (tests,
    /// `bench --env`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.set(key, value);
        self
    }

    pub(super) fn with_env(mut self, env: Env) -> Self {
        for (k, v) in &env.set {
            self.env.set(k, v);
        }
        for k in &env.unset {
            self.env.unset(k);
        }
        self
    }

    /// Applies `LOG_FORMAT` / `RUST_LOG` where the settings name them.
    pub fn logging(mut self, logging: &Logging) -> Self {
        match logging.format {
            Some(LogFormat::Json) => self.env.set("LOG_FORMAT", "json"),
            Some(LogFormat::Compact) => self.env.set("LOG_FORMAT", "compact"),
            None => {}
        }
        if let Some(filter) = &logging.filter {
            self.env.set("RUST_LOG", filter);
        }
        self
    }

    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// Replaces the readiness checks (run in order).
    pub fn ready(mut self, probes: Vec<Probe>) -> Self {
        self.ready = probes;
        self
    }

    /// Checks readiness every `poll` (the bench measures start-up times at 2 ms).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Starts the process. A child whose output is not a terminal gets `NO_COLOR=1`, so log
    /// files and captured test output have no escape codes.
    pub fn spawn(&self) -> Result<Process> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for k in &self.env.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env.set {
            cmd.env(k, v);
        }
        if !self.output.is_terminal() && self.env.get("NO_COLOR").is_none() {
            cmd.env("NO_COLOR", "1");
        }
        Process::spawn_command(&self.name, cmd, &self.output)
            .with_context(|| format!("could not start {} ({})", self.name, self.program.display()))
    }

    /// Waits until every readiness check passes in turn; fails when the process exits first
    /// or `timeout` passes.
    pub async fn wait_ready(&self, process: &mut Process, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        for probe in &self.ready {
            while !probe.passes().await {
                if !process.is_running() {
                    bail!("{} exited before it became ready{}", self.name, self.output.hint());
                }
                if start.elapsed() > timeout {
                    bail!("{} not ready ({probe:?}) after {timeout:?}{}", self.name, self.output.hint());
                }
                tokio::time::sleep(self.poll).await;
            }
        }
        Ok(())
    }

    /// [`Launch::spawn`], then [`Launch::wait_ready`].
    pub async fn start(&self, timeout: Duration) -> Result<Process> {
        let mut process = self.spawn()?;
        self.wait_ready(&mut process, timeout).await?;
        Ok(process)
    }
}
