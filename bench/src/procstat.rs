//! Per-process figures from /proc (through the `procfs` crate): the counters a cell samples
//! before and after its load ([`ProcessCounters`]: CPU time, context switches), and the peak
//! resident set (VmHWM) with its reset.
//!
//! Sources, proc(5): `/proc/<pid>/stat` fields 14-17 (utime, stime, cutime, cstime, in clock
//! ticks, every thread of the process included); `/proc/<pid>/task/<tid>/status`
//! (voluntary_ctxt_switches, nonvoluntary_ctxt_switches: per thread, so summed over the
//! threads); `/proc/<pid>/status` VmHWM (KiB); `/proc/<pid>/clear_refs`.

use std::ops::{Add, Sub};

use anyhow::{Context, Result};
use procfs::process::{ClearRefs, Process};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`; 100 on Linux): the unit of CPU times.
pub fn clock_ticks() -> f64 {
    procfs::ticks_per_second() as f64
}

fn process(pid: u32) -> Result<Process> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    Process::new(pid).with_context(|| format!("/proc/{pid}"))
}

/// What one process (or a group summed together) has consumed since it started; a cell's
/// figures are the difference of two samples. Every field is a count that only grows, so that
/// `after - before` is what happened in between (a counter that goes away with an exited
/// thread makes the difference saturate at 0, never wrap).
///
/// Counters with no /proc source are read elsewhere around the same load: system calls and
/// instructions by a perf session attached for the cell (crate::perf), the gateway's heap
/// allocations from its metrics; all meet per request in `results::PerRequest`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessCounters {
    /// CPU time in user mode, clock ticks ([`clock_ticks`] per second).
    pub utime: u64,
    /// CPU time in the kernel on the process's behalf, clock ticks.
    pub stime: u64,
    /// Times a thread gave up the CPU to wait (I/O, a lock, epoll), summed over the threads.
    pub voluntary_switches: u64,
    /// Times a thread was preempted (its time slice ran out, or a higher priority woke).
    pub involuntary_switches: u64,
}

impl ProcessCounters {
    /// The counters of `pid` now. Errors: the process is gone or /proc is unreadable.
    pub fn read(pid: u32) -> Result<Self> {
        let process = process(pid)?;
        let stat = process.stat().with_context(|| format!("/proc/{pid}/stat"))?;
        let mut counters = ProcessCounters { utime: stat.utime, stime: stat.stime, ..Default::default() };
        // A thread that exits between listing and reading is skipped, as is its count.
        for task in process.tasks().with_context(|| format!("/proc/{pid}/task"))?.flatten() {
            if let Ok(status) = task.status() {
                counters.voluntary_switches += status.voluntary_ctxt_switches.unwrap_or(0);
                counters.involuntary_switches += status.nonvoluntary_ctxt_switches.unwrap_or(0);
            }
        }
        Ok(counters)
    }

    /// CPU of this process's waited-for children (cutime + cstime: the load generator, wrk,
    /// once it has exited). The kernel gives no context switches for them here.
    pub fn children_of_this_process() -> Result<Self> {
        let stat = Process::myself()?.stat().context("/proc/self/stat")?;
        let ticks = |t: i64| u64::try_from(t).unwrap_or(0);
        Ok(ProcessCounters { utime: ticks(stat.cutime), stime: ticks(stat.cstime), ..Default::default() })
    }

    /// utime + stime, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }
}

impl Add for ProcessCounters {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        ProcessCounters {
            utime: self.utime + o.utime,
            stime: self.stime + o.stime,
            voluntary_switches: self.voluntary_switches + o.voluntary_switches,
            involuntary_switches: self.involuntary_switches + o.involuntary_switches,
        }
    }
}

impl Sub for ProcessCounters {
    type Output = Self;

    /// What happened between two samples (`later - earlier`), each field saturating at 0.
    fn sub(self, earlier: Self) -> Self {
        ProcessCounters {
            utime: self.utime.saturating_sub(earlier.utime),
            stime: self.stime.saturating_sub(earlier.stime),
            voluntary_switches: self.voluntary_switches.saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self.involuntary_switches.saturating_sub(earlier.involuntary_switches),
        }
    }
}

/// `pid` and every process whose parent is `pid` (PostgreSQL's postmaster and its backends).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(all) = procfs::process::all_processes() {
        let children = all
            .flatten()
            .filter(|p| p.stat().is_ok_and(|s| u32::try_from(s.ppid).is_ok_and(|parent| parent == pid)))
            .filter_map(|p| u32::try_from(p.pid()).ok());
        pids.extend(children);
    }
    pids
}

/// Peak resident set size of `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = process(pid)?.status().with_context(|| format!("/proc/{pid}/status"))?;
    status.vmhwm.context("no VmHWM")
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`), so that the next
/// reading is the peak of the cell that follows. Best effort: needs ownership of the process.
pub fn reset_peak_rss(pid: u32) -> bool {
    process(pid).is_ok_and(|p| p.clear_refs(ClearRefs::PeakRSS).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU on this thread until `ticks` clock ticks of CPU were spent (bounded: 30 s).
    fn spin_for_ticks(ticks: u64) {
        let me = std::process::id();
        let start = ProcessCounters::read(me).expect("own counters").cpu_ticks();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        while ProcessCounters::read(me).expect("own counters").cpu_ticks() < start + ticks {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(std::time::Instant::now() < deadline, "no CPU time counted after 30 s ({x})");
        }
    }

    #[test]
    fn counters_grow_with_work() {
        let me = std::process::id();
        let before = ProcessCounters::read(me).expect("own counters");
        spin_for_ticks(2);
        // Sleeping gives up the CPU: a voluntary switch of this (live) thread.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let after = ProcessCounters::read(me).expect("own counters");
        let delta = after - before;
        assert!(delta.cpu_ticks() >= 2, "{delta:?}");
        assert!(delta.voluntary_switches >= 1, "{delta:?}");
        assert_eq!(before - after, ProcessCounters::default(), "a difference never wraps");
        assert_eq!((delta + before).cpu_ticks(), after.cpu_ticks());
    }

    #[test]
    fn reads_own_figures() {
        let me = std::process::id();
        assert!(peak_rss_kib(me).is_ok_and(|k| k > 0));
        assert!(ProcessCounters::children_of_this_process().is_ok());
        assert!(with_children(me).contains(&me));
        assert!(reset_peak_rss(me));
        assert!(ProcessCounters::read(u32::MAX).is_err());
    }

    #[test]
    fn children_are_found() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep starts");
        let found = with_children(std::process::id()).contains(&child.id());
        child.kill().expect("kill");
        child.wait().expect("reaped");
        assert!(found);
    }
}
