//! After the last cell: what makes the run invalid, the settings and machine it ran with, and
//! the results written as JSON and markdown.

use std::collections::BTreeMap;

use anyhow::Result;

use super::setup::manifest_dir;
use crate::options::Options;
use crate::report;
use crate::results::{Cell, Results};

/// Why the run is not valid: cells with answers they should not get, and gateway cells that
/// called auth-svc.
pub fn problems(cells: &[Cell]) -> Vec<String> {
    let mut problems: Vec<String> = cells
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{} via {}: {} non-2xx (allowed: {:?}), {} socket errors, statuses {:?}",
                c.workload, c.path, c.non_2xx, c.allowed, c.socket_errors, c.statuses
            )
        })
        .collect();
    for c in cells.iter().filter(|c| c.path.starts_with("gateway") && c.workload != "health") {
        if c.validate_calls_per_1k > 0.0 {
            problems.push(format!(
                "{} via {}: {:.2} auth-svc calls per 1,000 requests",
                c.workload, c.path, c.validate_calls_per_1k
            ));
        }
    }
    problems
}

/// The first three fields of /proc/loadavg text (1, 5 and 15 minutes).
fn loadavg(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The run's settings as reported; `load_before`: /proc/loadavg before the stack started.
pub fn settings(o: &Options, load_before: &str) -> BTreeMap<&'static str, String> {
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    BTreeMap::from([
        ("duration_s", o.duration.as_secs_f64().to_string()),
        ("warmup_s", o.warmup.as_secs_f64().to_string()),
        ("rounds", o.rounds.to_string()),
        ("paced_delay_ms", o.paced_delay_ms.to_string()),
        ("vpc_delay_ms", (o.vpc_delay.as_secs_f64() * 1000.0).to_string()),
        ("revocations", o.revocations.to_string()),
        ("upstream", if o.unix_upstream { "unix socket" } else { "tcp" }.to_owned()),
        ("baseline_bin", o.baseline_bin.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        ("connections", o.connections.to_string()),
        ("wrk_threads", o.threads.to_string()),
        ("users", o.users.to_string()),
        ("tasks_per_user", o.tasks_per_user.to_string()),
        ("login_flood", o.login_flood.to_string()),
        ("postgres", if o.durable { "durable (fsync on)" } else { "fsync off, synchronous_commit off" }.to_owned()),
        ("logs", "LOG_FORMAT=json, RUST_LOG default (as on ECS), to files".to_owned()),
        (
            "extra_env",
            o.env.iter().map(|e| format!("{}:{}={}", e.process, e.key, e.value)).collect::<Vec<_>>().join(" "),
        ),
        ("loadavg", format!("before {}, after {}", loadavg(load_before), loadavg(&load_after))),
    ])
}

/// The first line a command prints (stdout, else stderr); "" when it cannot run.
fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_default()
}

/// The checkout's short commit hash ("" outside a git checkout).
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(devstack::stack::repo_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The machine the run ran on: CPUs, memory, kernel, wrk's version.
pub fn machine() -> BTreeMap<&'static str, String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    BTreeMap::from([
        ("cpus", cpus.to_string()),
        ("cpu_model", model),
        ("memory_gib", format!("{:.1}", mem_kib as f64 / 1024.0 / 1024.0)),
        ("kernel", first_line("uname", &["-r"])),
        ("wrk", first_line("wrk", &["--version"])),
        (
            "note",
            format!("{cpus} cores shared by the load generator (wrk), the services and PostgreSQL; loopback only"),
        ),
    ])
}

/// Prints the markdown and writes `--out` (default bench/results/latest.json, quick:
/// quick.json) with the markdown beside it.
pub fn write(o: &Options, results: &Results) -> Result<()> {
    let markdown = report::markdown(results);
    println!("{markdown}");
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| manifest_dir().join("results").join(if o.quick { "quick.json" } else { "latest.json" }));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(results)?)?;
    std::fs::write(out.with_extension("md"), &markdown)?;
    eprintln!("==> results: {} and {} ({:.0} s)", out.display(), out.with_extension("md").display(), results.elapsed_s);
    Ok(())
}
