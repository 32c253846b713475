//! The per-request counters table: system calls and instructions (perf), heap allocations and
//! bytes (the gateway's counting allocator), beside the times of the other tables.

use std::fmt::Write;

use super::tables::{edge, label};
use crate::callgrind::CallgrindFigure;
use crate::perf::Availability;
use crate::results::{Cell, PerRequest};

/// One figure with `digits` decimals, or what stands in for it: "n/a" when the source cannot
/// count it here, "-" when this process was not counted in this cell.
fn figure(value: Option<f64>, digits: usize, unavailable: bool) -> String {
    match value {
        Some(v) => format!("{v:.digits$}"),
        None if unavailable => "n/a".into(),
        None => "-".into(),
    }
}

/// Per request of each cell: the edge's and the service's system calls and instructions,
/// the gateway's heap allocations and bytes; then the sources and why a figure is n/a.
pub fn counters(s: &mut String, cells: &[Cell], counting: &Availability) {
    let no_syscalls = !counting.syscalls.is_empty();
    let no_instructions = !counting.instructions.is_empty();
    let _ = writeln!(s, "\n### Per-request counters (system calls, instructions, heap)\n");
    let _ = writeln!(
        s,
        "| workload | path | edge syscalls/req | task-svc syscalls/req | edge instructions/req | task-svc instructions/req | gateway allocations/req | gateway heap bytes/req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for c in cells {
        let service = c.per_request.get("task-svc").or_else(|| c.per_request.get("task-svc-vpc"));
        let of = |p: Option<&PerRequest>, f: fn(&PerRequest) -> Option<f64>| p.and_then(f);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            label(&c.workload),
            c.path,
            edge(c, |c| figure(c.edge_per_request.syscalls, 1, no_syscalls)),
            figure(of(service, |p| p.syscalls), 1, no_syscalls),
            edge(c, |c| figure(c.edge_per_request.instructions, 0, no_instructions)),
            figure(of(service, |p| p.instructions), 0, no_instructions),
            edge(c, |c| figure(c.edge_per_request.heap_allocations, 1, false)),
            edge(c, |c| figure(c.edge_per_request.heap_bytes, 0, false)),
        );
    }
    let why = |reason: &str| if reason.is_empty() { String::new() } else { format!(" (n/a here: {reason})") };
    let _ = writeln!(
        s,
        "\nSystem calls: `perf stat -e raw_syscalls:sys_enter -p PID` on each process of the path and on the service behind it, for the cell's load{}. Instructions: the same perf, `-e instructions` (a hardware counter){}. Heap: the gateway's `count-allocations` build (a counting global allocator, scraped from its metrics before and after the cell); \"-\" with the default build.",
        why(&counting.syscalls),
        why(&counting.instructions),
    );
}

/// `--callgrind`'s figures: instructions per request of each edge on valgrind's simulated CPU.
pub fn callgrind(s: &mut String, figures: &[CallgrindFigure]) {
    if figures.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### Instructions per request under callgrind (`--callgrind`)\n");
    let _ = writeln!(s, "| workload | path | requests | edge instructions/req |");
    let _ = writeln!(s, "|---|---|---:|---:|");
    for f in figures {
        let _ = writeln!(s, "| {} | {} | {} | {:.0} |", f.workload, f.path, f.requests, f.instructions_per_request);
    }
    let _ = writeln!(
        s,
        "\nRequests one at a time through the edge running under `valgrind --tool=callgrind` (every thread), counts zeroed after a first request and dumped after the last (`callgrind_control -z`, `-d`); the `PUT` sends `{}`. The figure does not follow the machine's load; runs of one binary differ by about 0.5% (timers, the allocator's state). Valgrind hides the CPU's SHA extensions, so SHA-256 (the gateway's cache key, HAProxy's HMAC) runs in software here for both.",
        crate::callgrind::PUT_BODY
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_say_na_only_when_the_source_cannot_count() {
        assert_eq!(figure(Some(12.345), 1, false), "12.3");
        assert_eq!(figure(None, 1, true), "n/a");
        assert_eq!(figure(None, 1, false), "-");
    }

    #[test]
    fn callgrind_figures_are_one_row_per_workload_and_path() {
        let f = |workload: &str, path: &str, n: f64| CallgrindFigure {
            workload: workload.into(),
            path: path.into(),
            requests: 2000,
            instructions_per_request: n,
        };
        let mut s = String::new();
        callgrind(
            &mut s,
            &[f("GET /tasks/{id}", "gateway", 179_385.4), f("PUT /tasks/{id}", "haproxy-jwt", 130_000.6)],
        );
        assert!(s.contains("| GET /tasks/{id} | gateway | 2000 | 179385 |"), "{s}");
        assert!(s.contains("| PUT /tasks/{id} | haproxy-jwt | 2000 | 130001 |"), "{s}");
        assert!(s.contains(crate::callgrind::PUT_BODY), "the PUT's body is named: {s}");
        let mut none = String::new();
        callgrind(&mut none, &[]);
        assert!(none.is_empty());
    }
}
