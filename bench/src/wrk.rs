//! Running `wrk` with one of the Lua scripts under bench/lua and reading the JSON line its
//! `done()` prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    /// wrk's "Non-2xx or 3xx responses".
    pub status: u64,
    pub timeout: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// What `done()` in bench/lua/report.lua prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    pub errors: Errors,
    pub latency_us: Latency,
    /// Count per status code, when the script counts them (login).
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 { 0.0 } else { self.requests as f64 * 1e6 / self.duration_us as f64 }
    }

    pub fn socket_errors(&self) -> u64 {
        self.errors.connect + self.errors.read + self.errors.write + self.errors.timeout
    }
}

/// One wrk invocation.
pub struct Load<'a> {
    pub url: String,
    pub script: &'a str,
    pub args: Vec<String>,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
    pub count_statuses: bool,
    /// Per-connection pause after each answer (ms): a fixed, unsaturated offered load.
    pub delay_ms: Option<u32>,
}

/// Whether `wrk` is on PATH.
pub fn check_installed() -> Result<()> {
    match Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Ok(()),
        Err(_) => bail!("wrk not found: install it with `apt-get install -y wrk`"),
    }
}

pub fn run(lua_dir: &Path, load: &Load<'_>) -> Result<Run> {
    let secs = load.duration.as_secs_f64().ceil().max(1.0) as u64;
    let mut cmd = Command::new("wrk");
    cmd.arg("-t")
        .arg(load.threads.min(load.connections).to_string())
        .arg("-c")
        .arg(load.connections.to_string())
        .arg("-d")
        .arg(format!("{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(lua_dir.join(load.script))
        .arg(&load.url);
    if !load.args.is_empty() {
        cmd.arg("--").args(&load.args);
    }
    cmd.env("BENCH_LUA_DIR", lua_dir);
    if load.count_statuses {
        cmd.env("BENCH_COUNT_STATUSES", "1");
    }
    if let Some(ms) = load.delay_ms {
        cmd.env("BENCH_DELAY_MS", ms.to_string());
    }
    let out = cmd.stdin(Stdio::null()).output().context("could not run wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .with_context(|| format!("wrk printed no BENCH_JSON line: {stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("bad BENCH_JSON line: {line}"))
}
