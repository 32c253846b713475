//! Instructions per request under valgrind's callgrind (`--callgrind N`): the edge runs on
//! valgrind's simulated CPU, which counts every instruction executed whatever the machine's
//! load, so the figure repeats from run to run (the hardware counter is often missing in VMs).
//! The edge is a process of its own started under `valgrind --tool=callgrind`; the bench
//! zeroes its counts (`callgrind_control -z`), sends N requests one at a time, dumps them
//! (`callgrind_control -d`) and reads the dump's `summary:` line (instructions executed, `Ir`,
//! every thread; callgrind's file format, valgrind manual "Callgrind Format Specification").

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use devstack::launch::RunningService;
use serde::Serialize;

/// What is sent through an edge under callgrind: a read, and a write with a body (whose cost
/// against the read is one of the hop's targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallgrindWorkload {
    /// `GET /tasks/{id}`.
    Get,
    /// `PUT /tasks/{id}` with [`PUT_BODY`].
    Put,
}

/// The body of a measured `PUT` (one of the load's PUT bodies, `bench/lua/tasks.lua`).
pub const PUT_BODY: &str = r#"{"status":"in_progress","priority":"high"}"#;

impl CallgrindWorkload {
    /// Both, in the order they are measured.
    pub const ALL: [CallgrindWorkload; 2] = [CallgrindWorkload::Get, CallgrindWorkload::Put];

    /// The workload's name in the report: `GET /tasks/{id}`, `PUT /tasks/{id}`.
    pub fn label(self) -> &'static str {
        match self {
            CallgrindWorkload::Get => "GET /tasks/{id}",
            CallgrindWorkload::Put => "PUT /tasks/{id}",
        }
    }
}

/// One edge's figure for one workload.
#[derive(Debug, Clone, Serialize)]
pub struct CallgrindFigure {
    /// The workload measured ([`CallgrindWorkload::label`]).
    pub workload: String,
    /// The path measured (gateway, haproxy-jwt, haproxy-jwt-log).
    pub path: String,
    /// Requests sent between zeroing and dumping (all answered 2xx).
    pub requests: u64,
    /// Instructions executed by the edge (every thread) per request.
    pub instructions_per_request: f64,
}

/// A script that runs `program` under callgrind, dumps going to `<run_dir>/callgrind.<name>.out.N`
/// (to start the edge with instead of its binary).
pub fn wrapper(run_dir: &Path, name: &str, program: &Path) -> Result<PathBuf> {
    let script = run_dir.join(format!("{name}.sh"));
    let out = run_dir.join(format!("callgrind.{name}.out"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file='{}' '{}' \"$@\"\n",
            out.display(),
            program.display()
        ),
    )?;
    let status = Command::new("chmod").arg("755").arg(&script).status()?;
    if !status.success() {
        bail!("chmod {}", script.display());
    }
    Ok(script)
}

/// The instructions executed (the `summary:` line, else `totals:`) of a callgrind dump.
pub fn instructions(dump: &str) -> Option<u64> {
    let line = |key: &str| {
        dump.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    line("summary:").or_else(|| line("totals:"))
}

/// `callgrind_control FLAG PID`: `-z` zeroes the counts, `-d` writes a dump.
fn control(flag: &str, pid: u32) -> Result<()> {
    let out = Command::new("callgrind_control").args([flag, &pid.to_string()]).output().context("callgrind_control")?;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("OK") {
        bail!("callgrind_control {flag} {pid}: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    Ok(())
}

/// The newest dump of `name` (the highest `.N` suffix) in `run_dir`.
fn newest_dump(run_dir: &Path, name: &str) -> Result<String> {
    let prefix = format!("callgrind.{name}.out.");
    let newest = std::fs::read_dir(run_dir)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u64>().ok().map(|n| (n, e.path())))
        .max_by_key(|(n, _)| *n)
        .with_context(|| format!("no callgrind dump of {name} in {}", run_dir.display()))?;
    Ok(std::fs::read_to_string(newest.1)?)
}

/// Sends `count` requests of `workload` through `edge` (started with [`wrapper`] under its
/// name; `path` names it in the report) one at a time, the seeded `(token, task id)` pairs in
/// turn, and returns its instructions per request. Errors: callgrind cannot be controlled, or
/// an answer is not 2xx (the figure would not be that of a served request).
pub async fn measure(
    run_dir: &Path,
    edge: &RunningService,
    path: &str,
    requests: &[(String, String)],
    workload: CallgrindWorkload,
    count: u64,
) -> Result<CallgrindFigure> {
    let (name, pid, url) = (edge.name, edge.pid(), edge.url());
    let client = reqwest::Client::new();
    // One request first: the connection is open and lazily built state exists before zeroing.
    let send = |i: usize| {
        let (token, task) = &requests[i % requests.len()];
        let target = format!("{url}/tasks/{task}");
        let request = match workload {
            CallgrindWorkload::Get => client.get(target),
            CallgrindWorkload::Put => {
                client.put(target).header(reqwest::header::CONTENT_TYPE, "application/json").body(PUT_BODY)
            }
        };
        request.bearer_auth(token).send()
    };
    send(0).await?.error_for_status()?;
    control("-z", pid)?;
    for i in 0..count {
        let answer = send(i as usize + 1).await?;
        if !answer.status().is_success() {
            bail!("{path} under callgrind answered {} to {}", answer.status(), workload.label());
        }
        answer.bytes().await?;
    }
    control("-d", pid)?;
    let total = instructions(&newest_dump(run_dir, name)?).context("no summary in the callgrind dump")?;
    Ok(CallgrindFigure {
        workload: workload.label().to_owned(),
        path: path.to_owned(),
        requests: count,
        instructions_per_request: total as f64 / count as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a dump `callgrind_control -d` wrote here (valgrind 3.19), cut after the
    /// first function.
    const DUMP: &str = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 2256\n\
                        cmd:  /usr/bin/python3 -c import time\npart: 1\n\n\ndesc: I1 cache: \n\
                        desc: D1 cache: \ndesc: LL cache: \n\ndesc: Timerange: Basic block 16384053 - 16809567\n\
                        desc: Trigger: Client Request: Dump Statistics\n\npositions: line\nevents: Ir\n\
                        summary: 5096112\n\n\nob=(1) /usr/bin/python3.11\nfl=(1) ???\nfn=(1) 0x0000000000547b00\n0 3\n\n\
                        totals: 5100426\n";

    #[test]
    fn reads_the_summary_line() {
        assert_eq!(instructions(DUMP), Some(5_096_112));
        assert_eq!(instructions("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(instructions("events: Ir\n"), None);
    }

    #[test]
    fn the_wrapper_runs_the_program_under_callgrind() {
        let dir = std::env::temp_dir().join(format!("callgrind-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let script = wrapper(&dir, "edge", Path::new("/usr/bin/true")).expect("script");
        let text = std::fs::read_to_string(&script).unwrap_or_default();
        assert!(text.contains("exec valgrind --tool=callgrind") && text.contains("'/usr/bin/true' \"$@\""), "{text}");
        if Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success()) {
            let ran = Command::new(&script).status().is_ok_and(|s| s.success());
            assert!(
                ran && instructions(&std::fs::read_to_string(dir.join("callgrind.edge.out")).unwrap_or_default())
                    .is_some_and(|n| n > 0)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
