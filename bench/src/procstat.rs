//! Per-process figures from /proc: CPU time (utime + stime) and peak resident set (VmHWM).

use std::fs;

use anyhow::{Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless it says otherwise).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The fields of /proc/<pid>/stat after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Result<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    Ok(rest.split_whitespace().skip(1).map(|f| f.parse::<u64>().unwrap_or(0)).collect())
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let f = stat_fields(pid)?;
    // Field 14 (utime) and 15 (stime), counted from 1; `f` starts at field 4.
    Ok(f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0))
}

/// cutime + cstime of this process: CPU of its waited-for children (the load generator).
pub fn children_cpu_ticks() -> Result<u64> {
    let f = stat_fields(std::process::id())?;
    Ok(f.get(12).copied().unwrap_or(0) + f.get(13).copied().unwrap_or(0))
}

fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(pid).ok()?.first().map(|p| *p as u32)
}

/// `pid` and every process whose parent is `pid` (PostgreSQL's postmaster and its backends).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && parent_pid(child) == Some(pid)
            {
                pids.push(child);
            }
        }
    }
    pids
}

/// Peak resident set size of `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`), so that the next
/// reading is the peak of the cell that follows. Best effort: needs ownership of the process.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_figures() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_ok());
        assert!(peak_rss_kib(me).is_ok_and(|k| k > 0));
        assert!(children_cpu_ticks().is_ok());
        assert!(with_children(me).contains(&me));
    }
}
