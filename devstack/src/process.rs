//! Starting the system's binaries as child processes, waiting for them to be ready, and
//! stopping them the way ECS does (SIGTERM, then SIGKILL after a grace period).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
/// The signals [`send_signal`] sends (rustix's).
pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process};

use crate::logs::LogSink;

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
    /// Every line of both streams goes to the sink prefixed with the process's name
    /// (`auth-1 | ...`). The child also gets a process group of its own, so a Ctrl-C in the
    /// terminal reaches only the parent, which then stops the children in order.
    Prefixed(LogSink),
}

impl Output {
    /// Whether the child writes to a terminal (then it may colour its output).
    pub fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        match self {
            Output::Inherit => std::io::stderr().is_terminal(),
            Output::File(_) => false,
            Output::Prefixed(sink) => sink.is_terminal(),
        }
    }

    /// Where to look for the child's output, for error messages.
    pub fn hint(&self) -> String {
        match self {
            Output::File(path) => format!("; see {}", path.display()),
            Output::Inherit | Output::Prefixed(_) => String::new(),
        }
    }
}

/// A running child process that is killed if dropped while still running.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Child,
}

impl Process {
    /// Starts `program` with `args` and `env` added to this process's environment. The
    /// system's binaries are started through [`crate::launch`]; this is for anything else.
    pub fn spawn(name: &str, program: &Path, args: &[&str], env: &[(String, String)], output: &Output) -> Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn_command(name, cmd, output)
            .with_context(|| format!("could not start {name} ({})", program.display()))
    }

    /// Starts `cmd` with stdin closed and its output sent to `output`.
    pub fn spawn_command(name: &str, mut cmd: Command, output: &Output) -> Result<Self> {
        cmd.stdin(Stdio::null());
        match output {
            Output::Inherit => {}
            Output::File(path) => {
                let file = fs::OpenOptions::new().create(true).append(true).open(path)?;
                cmd.stdout(file.try_clone()?).stderr(file);
            }
            Output::Prefixed(_) => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
            }
        }
        let mut child = cmd.spawn()?;
        if let Output::Prefixed(sink) = output {
            if let Some(out) = child.stdout.take() {
                sink.copy_lines(name, out);
            }
            if let Some(err) = child.stderr.take() {
                sink.copy_lines(name, err);
            }
        }
        Ok(Self { name: name.to_owned(), child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as ECS does when it stops a task.
    pub fn terminate(&self) -> Result<()> {
        send_signal(self.pid(), Signal::Term)
    }

    /// Sends `signal` (e.g. `Signal::Stop` to freeze it, `Signal::Cont` to resume it).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        send_signal(self.pid(), signal)
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

    /// The exit status if the process has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
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

/// Sends `signal` to process `pid` (kill(2)). Fails when there is no such process or it is
/// not ours to signal.
pub fn send_signal(pid: u32, signal: Signal) -> Result<()> {
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw).with_context(|| format!("{pid} is not a process id"))?;
    kill_process(raw, signal).with_context(|| format!("sending {signal:?} to pid {pid}"))
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

/// Runs `<program> healthcheck` with `PORT=port` (what an ECS container health check does) and
/// returns its exit code.
pub fn healthcheck_exit_code(program: &Path, port: u16) -> Result<Option<i32>> {
    let status = Command::new(program)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .status()
        .with_context(|| format!("could not run {} healthcheck", program.display()))?;
    Ok(status.code())
}
