//! The readable output (markdown tables) and the targets, evaluated from the measured cells.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::run::{Cell, Login, Network, Results, RevocationCost, Target};

fn find<'a>(cells: &'a [Cell], workload: &str, path: &str) -> Option<&'a Cell> {
    cells.iter().find(|c| c.workload == workload && c.path == path)
}

fn target(name: &str, value: String, target: &str, met: bool) -> Target {
    Target { name: name.to_owned(), value, target: target.to_owned(), met }
}

/// A path's CPU per request in ms (CPU seconds per 1,000 requests) in front of task-svc.
fn edge_ms(c: &Cell) -> f64 {
    c.edge_cpu_s_per_1k
}

/// The targets, from this run's numbers.
pub fn targets(
    cells: &[Cell],
    ready_ms: &BTreeMap<String, f64>,
    login: Option<&Login>,
    network: Option<&Network>,
    revocations: Option<&RevocationCost>,
) -> Vec<Target> {
    let mut out = Vec::new();
    if let (Some(g), Some(h)) = (find(cells, "get", "gateway"), find(cells, "get", "haproxy-jwt")) {
        out.push(target(
            "GET /tasks/{id}: gateway CPU per request vs HAProxy jwt_verify",
            format!("{:.3} vs {:.3} ms ({:.2}x)", edge_ms(g), edge_ms(h), edge_ms(g) / edge_ms(h)),
            "<= 1.00x",
            edge_ms(g) <= edge_ms(h),
        ));
    }
    if let (Some(d), Some(g)) = (find(cells, "get", "direct"), find(cells, "get", "gateway")) {
        let ratio = g.rps / d.rps;
        out.push(target(
            "GET /tasks/{id}: gateway (cache) throughput vs direct",
            format!("{:.0}% ({:.0} vs {:.0} req/s)", ratio * 100.0, g.rps, d.rps),
            ">= 85%",
            ratio >= 0.85,
        ));
        let extra = g.latency_ms["p99"] - d.latency_ms["p99"];
        out.push(target(
            "GET /tasks/{id}: gateway p99 above direct (saturated)",
            format!("{extra:+.2} ms ({:.2} vs {:.2} ms)", g.latency_ms["p99"], d.latency_ms["p99"]),
            "<= 2 ms",
            extra <= 2.0,
        ));
    }
    if let Some(get) = find(cells, "get", "gateway") {
        for (workload, label) in [("post", "POST /tasks"), ("put", "PUT /tasks/{id}")] {
            if let Some(c) = find(cells, workload, "gateway") {
                let x = edge_ms(c) / edge_ms(get);
                out.push(target(
                    &format!("{label}: gateway CPU per request vs its GET /tasks/{{id}}"),
                    format!("{x:.2}x ({:.3} vs {:.3} ms)", edge_ms(c), edge_ms(get)),
                    "<= 1.2x",
                    x <= 1.2,
                ));
            }
        }
    }
    if let (Some(d), Some(g), Some(v)) =
        (find(cells, "get-vpc", "direct"), find(cells, "get-vpc", "gateway"), find(cells, "get-vpc", "validate"))
    {
        let delay = network.map_or(0.25, |n| n.delay_ms);
        for q in ["p50", "p99"] {
            let (ga, va) = (g.latency_ms[q] - d.latency_ms[q], v.latency_ms[q] - d.latency_ms[q]);
            // A gateway that adds nothing measurable (<= 0) cannot be divided by; it passes.
            let x = if ga > 0.0 { va / ga } else { f64::INFINITY };
            out.push(target(
                &format!("{delay} ms one-way delay, fixed load: latency the validate path adds vs the gateway, {q}"),
                format!("{x:.1}x (validate {va:+.2} ms, gateway {ga:+.2} ms over direct {:.2} ms)", d.latency_ms[q]),
                ">= 3x",
                x >= 3.0,
            ));
        }
    }
    if let (Some(d), Some(g)) = (find(cells, "get-paced", "direct"), find(cells, "get-paced", "gateway")) {
        let extra = g.latency_ms["p99"] - d.latency_ms["p99"];
        out.push(target(
            "GET /tasks/{id} at a fixed, unsaturated load: gateway p99 above direct",
            format!(
                "{extra:+.2} ms ({:.2} vs {:.2} ms at {:.0} / {:.0} req/s)",
                g.latency_ms["p99"], d.latency_ms["p99"], g.rps, d.rps
            ),
            "<= 2 ms",
            extra <= 2.0,
        ));
    }
    if let (Some(plain), Some(revoked), Some(r)) =
        (find(cells, "get", "gateway"), find(cells, "get", "gateway-revoked"), revocations)
    {
        let x = edge_ms(revoked) / edge_ms(plain);
        out.push(target(
            &format!("GET /tasks/{{id}}: gateway CPU per request with {} live revocations vs none", r.seeded),
            format!("{x:.2}x ({:.3} vs {:.3} ms)", edge_ms(revoked), edge_ms(plain)),
            "no measurable difference (<= 1.10x, the rounds' spread)",
            x <= 1.10,
        ));
        let (a, b) = (
            revoked.peak_rss_mib.get("gateway-revoked").copied().unwrap_or(f64::NAN),
            plain.peak_rss_mib.get("gateway").copied().unwrap_or(f64::NAN),
        );
        out.push(target(
            &format!("gateway RSS with {} live revocations minus without", r.seeded),
            format!("{:+.1} MiB ({a:.1} vs {b:.1} MiB)", a - b),
            "<= 16 MiB",
            a - b <= 16.0,
        ));
        out.push(target(
            "revocation pull in steady state (nothing changed) vs the first, full pull",
            format!(
                "{:.0} bytes per pull ({} pulls) vs {} bytes ({} entries)",
                r.empty_pull_bytes, r.steady_pulls, r.full_pull_bytes, r.live_in_gateway
            ),
            "only what changed: <= 1 KiB",
            r.empty_pull_bytes <= 1024.0,
        ));
    }
    let gateway_cells: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.path == "gateway" && c.workload != "health" && !c.workload.starts_with("login"))
        .collect();
    if !gateway_cells.is_empty() {
        let worst = gateway_cells.iter().map(|c| c.validate_calls_per_1k).fold(0.0, f64::max);
        out.push(target(
            "auth-svc calls per 1,000 task requests via the gateway (steady state)",
            format!("{worst:.2}"),
            "0",
            worst == 0.0,
        ));
    }
    let peak = |process: &str| {
        cells
            .iter()
            .filter(|c| !c.workload.starts_with("login"))
            .filter_map(|c| c.peak_rss_mib.get(process).copied())
            .fold(0.0, f64::max)
    };
    for (process, limit) in
        [("gateway", 32.0), ("gateway-nocache", 32.0), ("gateway-revoked", 48.0), ("task-svc", 64.0)]
    {
        let p = peak(process);
        if p > 0.0 {
            out.push(target(
                &format!("{process} peak RSS under load"),
                format!("{p:.1} MiB"),
                &format!("<= {limit:.0} MiB"),
                p <= limit,
            ));
        }
    }
    for (name, ms) in ready_ms {
        if !["auth-svc", "task-svc", "gateway"].contains(&name.as_str()) {
            continue;
        }
        out.push(target(&format!("{name} start to ready"), format!("{ms:.1} ms"), "<= 200 ms", *ms <= 200.0));
    }
    if let Some(l) = login {
        out.push(target(
            "login throughput vs theoretical (permits / time per hash)",
            format!(
                "{:.0}% ({:.1} vs {:.1} logins/s; {} permits, {:.1} ms per hash)",
                l.ratio * 100.0,
                l.measured_rps,
                l.theoretical_rps,
                l.permits,
                l.time_per_hash_ms
            ),
            ">= 90%",
            l.ratio >= 0.9,
        ));
        let bounded = l.auth_rss_mib_flood <= l.auth_rss_mib_measured * 1.25 + 8.0;
        out.push(target(
            "auth-svc peak RSS: login flood vs saturated login",
            format!(
                "{:.1} MiB with {} clients vs {:.1} MiB with {}",
                l.auth_rss_mib_flood, l.flood_connections, l.auth_rss_mib_measured, l.measured_connections
            ),
            "no growth with waiting clients",
            bounded,
        ));
        let others: u64 =
            l.flood_statuses.iter().filter(|(s, _)| !["200", "401", "503"].contains(&s.as_str())).map(|(_, n)| n).sum();
        out.push(target(
            "login flood answers",
            l.flood_statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect::<Vec<_>>().join(", "),
            "only 200, 401, 503",
            others == 0 && !l.flood_statuses.is_empty(),
        ));
    }
    out
}

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

fn label(workload: &str) -> &str {
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

/// The peers side by side on `GET /tasks/{id}` and `GET /tasks/health`: throughput, the CPU
/// of what each path puts in front of task-svc, and the CPU of every process per request.
fn peers(s: &mut String, cells: &[Cell]) {
    let _ = writeln!(s, "\n### Peers: CPU per request and throughput\n");
    let _ = writeln!(
        s,
        "| workload | path | req/s | vs direct | edge CPU ms/req | task-svc CPU ms/req | all processes ms/req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for workload in ["get", "health"] {
        let direct = find(cells, workload, "direct");
        for c in cells.iter().filter(|c| c.workload == workload) {
            let vs = direct
                .filter(|_| c.path != "direct")
                .map_or(String::new(), |d| format!("{:.0}%", c.rps / d.rps * 100.0));
            let all: f64 = c.cpu_s_per_1k.values().sum();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {:.3} |",
                label(workload),
                c.path,
                c.rps,
                vs,
                if c.edges.is_empty() { "-".into() } else { format!("{:.3}", c.edge_cpu_s_per_1k) },
                cpu(c, "task-svc"),
                all
            );
        }
    }
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
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

    let _ = writeln!(s, "### Throughput and latency\n");
    let _ = writeln!(
        s,
        "| workload | path | req/s | vs direct | p50 ms | p99 ms | max ms | non-2xx | auth-svc calls /1k |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.cells {
        let direct = r.cells.iter().find(|d| d.workload == c.workload && d.path == "direct");
        let vs = match direct {
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

    peers(&mut s, &r.cells);
    if let Some(n) = &r.network {
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
        let direct = r.cells.iter().find(|c| c.workload == "get-vpc" && c.path == "direct");
        for c in r.cells.iter().filter(|c| c.workload == "get-vpc") {
            let added =
                |q: &str| direct.map_or(String::new(), |d| format!("{:+.2}", c.latency_ms[q] - d.latency_ms[q]));
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
    if let Some(rc) = &r.revocations {
        let _ = writeln!(s, "\n### Revocations (issue 9)\n");
        let _ = writeln!(
            s,
            "`gateway-revoked` pulls from an auth-svc whose database holds {} live revocations (it held {} once pulled). First, full pull: {} bytes from auth-svc; steady state: {:.0} bytes per pull over {} pulls (counted by a relay in front of that auth-svc, HTTP heads included).",
            rc.seeded, rc.live_in_gateway, rc.full_pull_bytes, rc.empty_pull_bytes, rc.steady_pulls
        );
    }

    let _ = writeln!(s, "\n### CPU seconds per 1,000 requests, and peak RSS (MiB) during the cell\n");
    let _ = writeln!(
        s,
        "| workload | path | edge CPU | task-svc CPU | auth-svc CPU | postgres CPU | wrk CPU | edge RSS | task-svc RSS | auth-svc RSS |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.cells {
        let edge = c.edges.first().map(String::as_str);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(&c.workload),
            c.path,
            if c.edges.is_empty() { "-".into() } else { format!("{:.3}", c.edge_cpu_s_per_1k) },
            cpu(c, "task-svc"),
            cpu(c, "auth-svc"),
            cpu(c, "postgres"),
            cpu(c, "wrk"),
            edge.map_or("-".into(), |e| rss(c, e)),
            rss(c, "task-svc"),
            rss(c, "auth-svc"),
        );
    }
    let _ = writeln!(
        s,
        "\n\"edge\" is what the path puts in front of task-svc: the gateway, the cache-less gateway, the validation proxy, or the front door plus the gateway (CPU summed; RSS of the front door)."
    );

    let _ = writeln!(s, "\n### Start to ready (spawn to first 200 from the health endpoint, database up)\n");
    let _ = writeln!(s, "| process | ms |");
    let _ = writeln!(s, "|---|---:|");
    for (name, ms) in &r.ready_ms {
        let _ = writeln!(s, "| {name} | {ms:.1} |");
    }

    if let Some(l) = &r.login {
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
    s
}
