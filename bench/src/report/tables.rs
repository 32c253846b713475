//! The markdown tables of a run, one function per section.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::results::{Cell, Login, Network, PerRequest, Results, RevocationCost, find};

fn cpu(c: &Cell, process: &str) -> String {
    match c.cpu_s_per_1k.get(process) {
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

fn rss(c: &Cell, process: &str) -> String {
    match c.peak_rss_mib.get(process) {
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

pub(super) fn label(workload: &str) -> &str {
    match workload {
        "health" => "GET /tasks/health",
        "get" => "GET /tasks/{id}",
        "get-paced" => "GET /tasks/{id} (paced)",
        "get-vpc" => "GET /tasks/{id} (paced, VPC delay)",
        "list" => "GET /tasks",
        "put" => "PUT /tasks/{id}",
        "post" => "POST /tasks",
        "login-1" => "POST /auth/login (1 client)",
        "login-n" => "POST /auth/login (saturated)",
        "login-flood" => "POST /auth/login (flood)",
        other => other,
    }
}

/// `v + i` context switches per request, or "-".
fn switches(p: Option<&PerRequest>) -> String {
    p.map_or("-".into(), |p| format!("{:.2} + {:.2}", p.voluntary_switches, p.involuntary_switches))
}

/// The edge's figure, or "-" for a path with no edge (direct, auth-svc).
pub(super) fn edge(c: &Cell, figure: impl FnOnce(&Cell) -> String) -> String {
    if c.edges.is_empty() { "-".into() } else { figure(c) }
}

/// Title, machine and settings.
pub fn header(s: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(s, "## Benchmark results ({} mode), {}\n", r.mode, r.date);
    let _ = writeln!(
        s,
        "Machine: {} cores ({}), {} GiB, Linux {}; **{}**. Commit `{}`, binaries `{}`, {}.\n",
        m.get("cpus").map_or("?", String::as_str),
        m.get("cpu_model").map_or("?", String::as_str),
        m.get("memory_gib").map_or("?", String::as_str),
        m.get("kernel").map_or("?", String::as_str),
        m.get("note").map_or("", String::as_str),
        r.commit,
        r.bin_dir,
        m.get("wrk").map_or("wrk", String::as_str),
    );
    let st = &r.settings;
    let _ = writeln!(
        s,
        "Settings: {} round(s) of {} s per cell after {} s warm-up each (median round shown), {} connections, {} wrk thread(s), {} users x {} tasks; PostgreSQL {}; {}. Load average {}.{}\n",
        st["rounds"],
        st["duration_s"],
        st["warmup_s"],
        st["connections"],
        st["wrk_threads"],
        st["users"],
        st["tasks_per_user"],
        st["postgres"],
        st["logs"],
        st["loadavg"],
        if st["extra_env"].is_empty() { String::new() } else { format!(" Extra environment: `{}`.", st["extra_env"]) }
    );
}

/// Every cell's throughput, latency, answers and auth-svc calls.
pub fn throughput(s: &mut String, cells: &[Cell]) {
    let _ = writeln!(s, "### Throughput and latency\n");
    let _ = writeln!(
        s,
        "| workload | path | req/s | vs direct | p50 ms | p99 ms | max ms | non-2xx | auth-svc calls /1k |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in cells {
        let vs = match find(cells, &c.workload, "direct") {
            Some(d) if d.rps > 0.0 && c.path != "direct" => format!("{:.0}%", c.rps / d.rps * 100.0),
            _ => "".into(),
        };
        let non2xx = if c.statuses.is_empty() {
            c.non_2xx.to_string()
        } else {
            c.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {}{} | {:.2} |",
            label(&c.workload),
            c.path,
            c.rps,
            vs,
            c.latency_ms["p50"],
            c.latency_ms["p99"],
            c.latency_ms["max"],
            non2xx,
            if c.ok { "" } else { " (!)" },
            c.validate_calls_per_1k
        );
    }
}

/// The peers side by side on `GET /tasks/{id}` and `GET /tasks/health`: throughput, the CPU
/// and context switches of what each path puts in front of task-svc, and the CPU of every
/// process per request.
pub fn peers(s: &mut String, cells: &[Cell]) {
    let _ = writeln!(s, "\n### Peers: CPU per request and throughput\n");
    let _ = writeln!(
        s,
        "| workload | path | req/s | vs direct | edge CPU ms/req | edge context switches/req | task-svc CPU ms/req | all processes ms/req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for workload in ["get", "health"] {
        let direct = find(cells, workload, "direct");
        for c in cells.iter().filter(|c| c.workload == workload) {
            let vs = direct
                .filter(|_| c.path != "direct")
                .map_or(String::new(), |d| format!("{:.0}%", c.rps / d.rps * 100.0));
            let all: f64 = c.cpu_s_per_1k.values().sum();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.3} |",
                label(workload),
                c.path,
                c.rps,
                vs,
                edge(c, |c| format!("{:.3}", c.edge_cpu_s_per_1k)),
                edge(c, |c| format!("{:.2}", c.edge_per_request.context_switches())),
                cpu(c, "task-svc"),
                all
            );
        }
    }
}

/// The VPC cell: what the relays held, and the latency each path adds over direct.
pub fn network(s: &mut String, n: &Network, cells: &[Cell]) {
    let _ = writeln!(s, "\n### A network that looks like a VPC\n");
    let _ = writeln!(
        s,
        "The `GET /tasks/{{id}} (paced, VPC delay)` cell runs every path against a second task-svc and auth-svc whose PostgreSQL connections, and the validation proxy's calls to auth-svc, cross relays holding each chunk {:.2} ms in each direction (bench/src/relay.rs). Held: p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms over {} chunks. For comparison `tokio::time::sleep({:.2} ms)` sleeps p50 {:.2} ms, p99 {:.2} ms here (1 ms timer wheel), which is why the relay has a timer thread of its own.\n",
        n.delay_ms,
        n.holds.p50_ms,
        n.holds.p99_ms,
        n.holds.max_ms,
        n.holds.chunks,
        n.delay_ms,
        n.tokio_sleep_ms.0,
        n.tokio_sleep_ms.1
    );
    let _ = writeln!(s, "| path | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    let direct = find(cells, "get-vpc", "direct");
    for c in cells.iter().filter(|c| c.workload == "get-vpc") {
        let added = |q: &str| direct.map_or(String::new(), |d| format!("{:+.2}", c.latency_ms[q] - d.latency_ms[q]));
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            c.path,
            c.rps,
            c.latency_ms["p50"],
            c.latency_ms["p99"],
            added("p50"),
            added("p99")
        );
    }
}

/// Issue 9: the revoked gateway's pulls.
pub fn revocations(s: &mut String, rc: &RevocationCost) {
    let _ = writeln!(s, "\n### Revocations (issue 9)\n");
    let _ = writeln!(
        s,
        "`gateway-revoked` pulls from an auth-svc whose database holds {} live revocations (it held {} once pulled). First, full pull: {} bytes from auth-svc; steady state: {:.0} bytes per pull over {} pulls (counted by a relay in front of that auth-svc, HTTP heads included).",
        rc.seeded, rc.live_in_gateway, rc.full_pull_bytes, rc.empty_pull_bytes, rc.steady_pulls
    );
}

/// CPU per request and peak RSS of each process, every cell.
pub fn cpu_and_memory(s: &mut String, cells: &[Cell]) {
    let _ = writeln!(s, "\n### CPU seconds per 1,000 requests, and peak RSS (MiB) during the cell\n");
    let _ = writeln!(
        s,
        "| workload | path | edge CPU | task-svc CPU | auth-svc CPU | postgres CPU | wrk CPU | edge RSS | task-svc RSS | auth-svc RSS |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in cells {
        let first_edge = c.edges.first().map(String::as_str);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(&c.workload),
            c.path,
            edge(c, |c| format!("{:.3}", c.edge_cpu_s_per_1k)),
            cpu(c, "task-svc"),
            cpu(c, "auth-svc"),
            cpu(c, "postgres"),
            cpu(c, "wrk"),
            first_edge.map_or("-".into(), |e| rss(c, e)),
            rss(c, "task-svc"),
            rss(c, "auth-svc"),
        );
    }
    let _ = writeln!(
        s,
        "\n\"edge\" is what the path puts in front of task-svc: the gateway, the cache-less gateway, the validation proxy, or the front door plus the gateway (CPU summed; RSS of the front door)."
    );
}

/// Context switches per request of each process, every cell (voluntary + involuntary).
pub fn context_switches(s: &mut String, cells: &[Cell]) {
    let _ = writeln!(s, "\n### Context switches per request (voluntary + involuntary)\n");
    let _ = writeln!(s, "| workload | path | edge | task-svc | auth-svc | postgres |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for c in cells {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            label(&c.workload),
            c.path,
            edge(c, |c| switches(Some(&c.edge_per_request))),
            switches(c.per_request.get("task-svc")),
            switches(c.per_request.get("auth-svc")),
            switches(c.per_request.get("postgres")),
        );
    }
    let _ = writeln!(
        s,
        "\nSummed over each process's threads (/proc/<pid>/task/*/status); the edge's over its processes. A voluntary switch is a wait (epoll, I/O, a lock): a property of the code. An involuntary one is a preemption: it follows the load on the cores."
    );
}

/// Spawn to ready of every process.
pub fn ready(s: &mut String, ready_ms: &BTreeMap<String, f64>) {
    let _ = writeln!(s, "\n### Start to ready (spawn to first 200 from the health endpoint, database up)\n");
    let _ = writeln!(s, "| process | ms |");
    let _ = writeln!(s, "|---|---:|");
    for (name, ms) in ready_ms {
        let _ = writeln!(s, "| {name} | {ms:.1} |");
    }
}

/// Hashing capacity and the flood.
pub fn login(s: &mut String, l: &Login) {
    let _ = writeln!(s, "\n### Login\n");
    let _ = writeln!(
        s,
        "Time per hash (1 client, mean latency): {:.1} ms; permits (HASH_CONCURRENCY default = CPU count): {}; \
         theoretical {:.1} logins/s; measured with {} clients: {:.1} logins/s ({:.0}%). \
         Flood of {} clients: {:.1} completed logins/s, answers {}; auth-svc peak RSS {:.1} MiB (vs {:.1} MiB with {} clients).",
        l.time_per_hash_ms,
        l.permits,
        l.theoretical_rps,
        l.measured_connections,
        l.measured_rps,
        l.ratio * 100.0,
        l.flood_connections,
        l.flood_completed_rps,
        l.flood_statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
        l.auth_rss_mib_flood,
        l.auth_rss_mib_measured,
        l.measured_connections,
    );
}

/// The targets, the problems that make the run invalid, and the command.
pub fn verdict(s: &mut String, r: &Results) {
    let _ = writeln!(s, "\n### Targets\n");
    let _ = writeln!(s, "| target | measured | wanted | met |");
    let _ = writeln!(s, "|---|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(s, "| {} | {} | {} | {} |", t.name, t.value, t.target, if t.met { "yes" } else { "**no**" });
    }
    if !r.problems.is_empty() {
        let _ = writeln!(s, "\n### Problems (the run is not valid)\n");
        for p in &r.problems {
            let _ = writeln!(s, "- {p}");
        }
    }
    let _ = writeln!(s, "\nCommand: `{}` ({:.0} s)", r.command, r.elapsed_s);
}
