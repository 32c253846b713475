//! Starting the system's binaries as child processes, waiting for them to be ready, and
//! stopping them the way ECS does (SIGTERM, then SIGKILL after a grace period).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The directory holding the workspace's binaries: `$TASKMGMT_BIN_DIR`, else the directory of
/// the running executable (for a test binary in `target/<profile>/deps`, its parent).
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("TASKMGMT_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("executable has no directory")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Output {
    Inherit,
    File(PathBuf),
}

/// A running child process that is killed if dropped while still running.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Child,
}

impl Process {
    pub fn spawn(name: &str, program: &Path, args: &[&str], env: &[(String, String)], output: &Output) -> Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        match output {
            Output::Inherit => {}
            Output::File(path) => {
                let file = fs::OpenOptions::new().create(true).append(true).open(path)?;
                cmd.stdout(file.try_clone()?).stderr(file);
            }
        }
        let child = cmd.spawn().with_context(|| format!("could not start {name} ({})", program.display()))?;
        Ok(Self { name: name.to_owned(), child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as ECS does when it stops a task.
    pub fn terminate(&self) -> Result<()> {
        signal(self.pid(), "TERM")
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<Option<ExitStatus>> {
        if self.child.try_wait()?.is_some() {
            return Ok(self.child.try_wait()?);
        }
        self.terminate()?;
        match self.wait_timeout(grace)? {
            Some(status) => Ok(Some(status)),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Ok(None)
            }
        }
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Polls `GET http://addr{path}` until it answers 200, the process exits, or `timeout` passes.
pub async fn wait_healthy(process: &mut Process, addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if platform::healthcheck::probe(addr, path, Duration::from_millis(500)).await {
            return Ok(());
        }
        if !process.is_running() {
            bail!("{} exited before it became healthy", process.name);
        }
        if start.elapsed() > timeout {
            bail!("{} not healthy at http://{addr}{path} after {timeout:?}", process.name);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
