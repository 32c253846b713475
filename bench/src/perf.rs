//! Kernel-counted figures of a process during a cell, from `perf stat` attached to it: system
//! calls entered (the `raw_syscalls:sys_enter` tracepoint) and instructions retired (the
//! `instructions` hardware counter). Both are counts of the work the code asks for, so they
//! hardly move with the machine's load, unlike times.
//!
//! Source: perf-stat(1) (`-x,` CSV output: value, unit, event, run time, percentage, ...; a
//! value of `<not supported>` when the kernel or the VM has no such counter, `<not counted>`
//! when the attached process never ran while counting). The tracepoint needs tracefs and,
//! unless root, `perf_event_paranoid` <= -1; hardware counters are often missing in VMs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

/// The tracepoint counted for system calls (every system call entered, whichever it is).
pub const SYSCALLS: &str = "raw_syscalls:sys_enter";
/// The hardware counter of instructions retired.
pub const INSTRUCTIONS: &str = "instructions";

/// What perf counted for one process over a session; `None`: the event could not be counted
/// here (see [`Availability`] for why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfCounts {
    pub syscalls: Option<u64>,
    pub instructions: Option<u64>,
}

/// The value of `event` in perf stat's CSV output: `Some(n)` counted, `Some(0)` not counted
/// (the process did not run), `None` not supported or absent (perf failed, the event is
/// unknown or not readable).
fn value_of(csv: &str, event: &str) -> Option<u64> {
    csv.lines().map(|l| l.split(',').collect::<Vec<_>>()).filter(|f| f.len() >= 3 && f[2] == event).find_map(
        |f| match f[0] {
            "<not counted>" => Some(0),
            v => v.trim().parse().ok(),
        },
    )
}

/// The counts of both events in perf stat's CSV (`-x,`) output.
pub fn parse(csv: &str) -> PerfCounts {
    PerfCounts { syscalls: value_of(csv, SYSCALLS), instructions: value_of(csv, INSTRUCTIONS) }
}

/// Whether each event can be counted on this machine, with why not when it cannot (shown
/// in the tables as "n/a: ...").
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Availability {
    /// "" when system calls are counted, else the reason.
    pub syscalls: String,
    /// "" when instructions are counted, else the reason.
    pub instructions: String,
}

impl Availability {
    /// Asks perf to count both events over `true`: what it cannot count here, it says so.
    pub fn probe() -> Self {
        let out = Command::new("perf").args(["stat", "-x,", "-e", &events(), "true"]).output();
        match out {
            Err(e) => Availability {
                syscalls: format!("perf unavailable ({e})"),
                instructions: format!("perf unavailable ({e})"),
            },
            Ok(o) => Self::from_probe(&String::from_utf8_lossy(&o.stderr)),
        }
    }

    /// The availability perf's output over `true` (which makes a few dozen system calls) shows.
    fn from_probe(csv: &str) -> Self {
        let counts = parse(csv);
        let why = |v: Option<u64>, what: &str| match v {
            Some(n) if n > 0 => String::new(),
            Some(_) => format!("perf counted no {what}"),
            None if csv.contains("<not supported>") && csv.contains(what) => {
                format!("perf: {what} not supported on this machine")
            }
            None => format!("perf cannot read {what}"),
        };
        Availability { syscalls: why(counts.syscalls, SYSCALLS), instructions: why(counts.instructions, INSTRUCTIONS) }
    }

    /// Whether perf can count anything at all here (else no session is started).
    pub fn any(&self) -> bool {
        self.syscalls.is_empty() || self.instructions.is_empty()
    }
}

fn events() -> String {
    format!("{SYSCALLS},{INSTRUCTIONS}")
}

/// `perf stat` attached to some processes, one perf per process (so that each is counted on
/// its own), every thread of each: started before a cell's load, finished after it.
pub struct Session {
    attached: Vec<(String, Child)>,
}

impl Session {
    /// Attaches perf to each `(name, pid)`. A perf that does not start leaves that process
    /// uncounted (`None` figures). perf gives no signal that it is counting: the caller waits
    /// a little before the load.
    pub fn start(targets: &[(String, u32)]) -> Self {
        let attached: Vec<(String, Child)> = targets
            .iter()
            .filter_map(|(name, pid)| {
                Command::new("perf")
                    .args(["stat", "-x,", "-e", &events(), "-p", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .ok()
                    .map(|child| (name.clone(), child))
            })
            .collect();
        Session { attached }
    }

    /// Stops every perf (SIGINT: it prints its counts and exits) and returns the counts by
    /// process name.
    pub fn finish(self) -> BTreeMap<String, PerfCounts> {
        let mut out = BTreeMap::new();
        for (name, child) in self.attached {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let counts = child.wait_with_output().map(|o| parse(&String::from_utf8_lossy(&o.stderr)));
            out.insert(name, counts.unwrap_or_default());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `perf stat -x, -e raw_syscalls:sys_enter,instructions -p PID` on this project's 2-core
    /// VM (Linux 6.18, perf 6.1), stopped with SIGINT: tracepoints yes, hardware counters no.
    const CAPTURED: &str = "11146,,raw_syscalls:sys_enter,97705573,100.00,,\n\
                            <not supported>,,instructions,0,100.00,,\n";
    /// The same, attached to a process that slept throughout.
    const IDLE: &str = "<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n\
                        <not supported>,,instructions,0,100.00,,\n";
    /// perf asked for a tracepoint this kernel lacks (its message on stderr, no CSV lines).
    const UNKNOWN_EVENT: &str = "event syntax error: 'raw_syscalls:nosuch,instructions'\n\
                                 \\___ unknown tracepoint\n\n\
                                 Error:\tFile /sys/kernel/tracing/events/raw_syscalls/nosuch not found.\n\
                                 Hint:\tPerhaps this kernel misses some CONFIG_ setting to enable this feature?.\n\n\
                                 Run 'perf list' for a list of valid events\n";

    #[test]
    fn parses_counts_not_counted_and_not_supported() {
        assert_eq!(parse(CAPTURED), PerfCounts { syscalls: Some(11146), instructions: None });
        assert_eq!(parse(IDLE), PerfCounts { syscalls: Some(0), instructions: None });
        assert_eq!(parse(UNKNOWN_EVENT), PerfCounts::default());
        assert_eq!(parse("1,,raw_syscalls:sys_enter,1,100.00,,\n42,,instructions,1,100.00,,\n").instructions, Some(42));
    }

    #[test]
    fn availability_says_why_not() {
        let here = Availability::from_probe(
            "29,,raw_syscalls:sys_enter,100,100.00,,\n<not supported>,,instructions,0,100.00,,\n",
        );
        assert!(here.syscalls.is_empty(), "{here:?}");
        assert!(here.instructions.contains("not supported"), "{here:?}");
        assert!(here.any());
        let none = Availability::from_probe(UNKNOWN_EVENT);
        assert!(!none.any());
        assert!(none.syscalls.contains("cannot read"), "{none:?}");
    }

    /// Against the real perf, when this machine has it: a process that makes system calls
    /// while attached is counted.
    #[test]
    fn counts_a_busy_process_when_perf_works_here() {
        if !Availability::probe().syscalls.is_empty() {
            eprintln!("perf cannot count system calls here: skipped");
            return;
        }
        let mut busy = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 4000 ]; do i=$((i+1)); /bin/true; done"])
            .spawn()
            .expect("sh starts");
        let session = Session::start(&[("sh".to_owned(), busy.id())]);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while busy.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let counts = session.finish();
        let _ = busy.kill();
        let _ = busy.wait();
        assert!(counts["sh"].syscalls.is_some_and(|n| n > 100), "{counts:?}");
    }
}
