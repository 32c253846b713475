//! Starting the system's binaries as child processes, waiting for them to be ready, and
//! stopping them the way ECS does (SIGTERM, then SIGKILL after a grace period).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
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

/// A shared, line-oriented log destination: the run command's stdout, or a file.
#[derive(Clone)]
pub struct LogSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    width: usize,
    terminal: bool,
    show_health_checks: bool,
}

/// An access-log line of a health check that answered 200, in the text or JSON format.
fn is_passing_health_check(line: &str) -> bool {
    let plain = strip_ansi(line);
    (plain.contains("/auth/health") || plain.contains("/tasks/health"))
        && (plain.contains("status=200") || plain.contains("\"status\":200"))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter: ESC [ ... m
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink").field("width", &self.width).finish_non_exhaustive()
    }
}

impl LogSink {
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        let mut sink = Self::new(Box::new(std::io::stdout()));
        sink.terminal = std::io::stdout().is_terminal();
        sink
    }

    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Arc::new(Mutex::new(out)), width: 10, terminal: false, show_health_checks: false }
    }

    /// Whether the sink is a terminal: children get `NO_COLOR=1` otherwise, so a log file or
    /// a test's captured output has no escape codes.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Also print the children's access-log lines for successful health checks (hidden by
    /// default: with a check every 2 s per target they would drown everything else).
    pub fn with_health_checks(mut self, show: bool) -> Self {
        self.show_health_checks = show;
        self
    }

    /// Writes one line as `name | line`; names are padded so the columns line up.
    pub fn line(&self, name: &str, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (e.g. piped into `head`) must not take the stack down.
        let _ = writeln!(out, "{name:<width$} | {line}", width = self.width);
        let _ = out.flush();
    }

    /// Writes a block of text as is (the run command's banner, meant to be copied).
    pub fn block(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Copies `stream` to the sink line by line on a thread of its own until it closes.
    fn copy_lines(&self, name: &str, stream: impl Read + Send + 'static) {
        let sink = self.clone();
        let name = name.to_owned();
        let _ = std::thread::Builder::new().name(format!("log-{name}")).spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            // Lines are read as bytes: a child writing invalid UTF-8 still gets logged.
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&buf);
                if sink.show_health_checks || !is_passing_health_check(&text) {
                    sink.line(&name, text.trim_end_matches(['\n', '\r']));
                }
                buf.clear();
            }
        });
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

#[cfg(test)]
mod tests {
    use super::is_passing_health_check;

    #[test]
    fn passing_health_checks_are_recognised() {
        let text = "\u{1b}[2m2026\u{1b}[0m INFO request: finished latency=0 ms status\u{1b}[2m=\u{1b}[0m200 method=GET path\u{1b}[2m=\u{1b}[0m/auth/health";
        assert!(is_passing_health_check(text));
        assert!(is_passing_health_check(r#"{"path":"/tasks/health","status":200}"#));
        assert!(!is_passing_health_check("path=/tasks/health status=502 upstream_status=0"));
        assert!(!is_passing_health_check("path=/tasks status=200"));
    }
}
