//! The issues' targets, evaluated from a run's cells: met or not, with the figures. A missed
//! target is reported, never an error.

use std::collections::BTreeMap;

use crate::results::{Cell, Login, Network, RevocationCost, Target, find};

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
    gateway_cost(cells, &mut out);
    vpc_latency(cells, network, &mut out);
    if let Some(r) = revocations {
        revocation_cost(cells, r, &mut out);
    }
    auth_calls(cells, &mut out);
    memory(cells, &mut out);
    for (name, ms) in ready_ms {
        if ["auth-svc", "task-svc", "gateway"].contains(&name.as_str()) {
            out.push(target(&format!("{name} start to ready"), format!("{ms:.1} ms"), "<= 200 ms", *ms <= 200.0));
        }
    }
    if let Some(l) = login {
        login_targets(l, &mut out);
    }
    out
}

/// The workloads of the hop's targets (issue 20), with their labels.
const HOP_WORKLOADS: [(&str, &str); 3] =
    [("get", "GET /tasks/{id}"), ("put", "PUT /tasks/{id}"), ("post", "POST /tasks")];

/// The hop's cost (issue 20): on each of `GET /tasks/{id}`, `PUT` and `POST`, the gateway's CPU
/// per request at most HAProxy `jwt_verify`'s (the goal, 0.8x, shown beside it) and its
/// throughput at least HAProxy's; a write at most 1.1x the gateway's GET (HAProxy's own ratio
/// shown beside it). And against direct on
/// `GET /tasks/{id}`: throughput and saturated p99 (issue 12).
fn gateway_cost(cells: &[Cell], out: &mut Vec<Target>) {
    for (workload, label) in HOP_WORKLOADS {
        let (Some(g), Some(h)) = (find(cells, workload, "gateway"), find(cells, workload, "haproxy-jwt")) else {
            continue;
        };
        let x = edge_ms(g) / edge_ms(h);
        out.push(target(
            &format!("{label}: gateway CPU per request vs HAProxy jwt_verify"),
            format!(
                "{:.3} vs {:.3} ms ({x:.2}x; goal 0.8x {})",
                edge_ms(g),
                edge_ms(h),
                if x <= 0.8 { "met" } else { "not met" }
            ),
            "<= 1.00x",
            x <= 1.0,
        ));
        let t = g.rps / h.rps;
        out.push(target(
            &format!("{label}: gateway throughput vs HAProxy jwt_verify"),
            format!("{t:.2}x ({:.0} vs {:.0} req/s)", g.rps, h.rps),
            ">= 1.00x",
            t >= 1.0,
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
    let Some(get) = find(cells, "get", "gateway") else { return };
    for (workload, label) in &HOP_WORKLOADS[1..] {
        if let Some(c) = find(cells, workload, "gateway") {
            let x = edge_ms(c) / edge_ms(get);
            // The peer's own write against its read, same run: how much of the ratio is the
            // workload (a slower write leaves more idle wake-ups per request) and not the edge.
            let peer = match (find(cells, workload, "haproxy-jwt"), find(cells, "get", "haproxy-jwt")) {
                (Some(w), Some(r)) => format!("; HAProxy jwt_verify {:.2}x", edge_ms(w) / edge_ms(r)),
                _ => String::new(),
            };
            out.push(target(
                &format!("{label}: gateway CPU per request vs its GET /tasks/{{id}}"),
                format!("{x:.2}x ({:.3} vs {:.3} ms{peer})", edge_ms(c), edge_ms(get)),
                "<= 1.1x",
                x <= 1.1,
            ));
        }
    }
}

/// The latency each path adds at a fixed load: behind VPC delay, and on loopback.
fn vpc_latency(cells: &[Cell], network: Option<&Network>, out: &mut Vec<Target>) {
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
}

/// Issue 9: a gateway with many live revocations against one with none.
fn revocation_cost(cells: &[Cell], r: &RevocationCost, out: &mut Vec<Target>) {
    let (Some(plain), Some(revoked)) = (find(cells, "get", "gateway"), find(cells, "get", "gateway-revoked")) else {
        return;
    };
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

/// The design's point: the gateway never asks auth-svc on a task request.
fn auth_calls(cells: &[Cell], out: &mut Vec<Target>) {
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
}

/// Peak RSS under load of the gateways and task-svc.
fn memory(cells: &[Cell], out: &mut Vec<Target>) {
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
}

/// Login throughput against the hashing capacity, and auth-svc under a flood.
fn login_targets(l: &Login, out: &mut Vec<Target>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::PerRequest;

    fn cell(workload: &str, path: &str, rps: f64, edge_ms: f64) -> Cell {
        Cell {
            workload: workload.into(),
            path: path.into(),
            connections: 32,
            duration_s: 6.0,
            requests: 1000,
            rps,
            latency_ms: BTreeMap::from([("p50", 1.0), ("p90", 2.0), ("p99", 3.0), ("max", 4.0), ("mean", 1.0)]),
            non_2xx: 0,
            socket_errors: 0,
            statuses: BTreeMap::new(),
            allowed: Vec::new(),
            ok: true,
            cpu_s_per_1k: BTreeMap::new(),
            peak_rss_mib: BTreeMap::new(),
            per_request: BTreeMap::new(),
            validate_calls_per_1k: 0.0,
            edges: vec![path.into()],
            edge_cpu_s_per_1k: edge_ms,
            edge_per_request: PerRequest::default(),
            rounds: Vec::new(),
        }
    }

    fn met(targets: &[Target], name: &str) -> bool {
        targets.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no target {name}: {targets:?}")).met
    }

    #[test]
    fn the_hop_is_judged_against_haproxy_on_each_workload_and_writes_against_the_get() {
        let cells = [
            cell("get", "gateway", 9000.0, 0.040),
            cell("get", "haproxy-jwt", 8000.0, 0.045),
            cell("put", "gateway", 5000.0, 0.0436),
            cell("put", "haproxy-jwt", 5500.0, 0.043),
            cell("post", "gateway", 6000.0, 0.0448),
            cell("post", "haproxy-jwt", 6000.0, 0.050),
        ];
        let mut out = Vec::new();
        gateway_cost(&cells, &mut out);
        assert!(met(&out, "GET /tasks/{id}: gateway CPU per request vs HAProxy jwt_verify"));
        assert!(met(&out, "GET /tasks/{id}: gateway throughput vs HAProxy jwt_verify"));
        assert!(!met(&out, "PUT /tasks/{id}: gateway CPU per request vs HAProxy jwt_verify"));
        assert!(!met(&out, "PUT /tasks/{id}: gateway throughput vs HAProxy jwt_verify"));
        assert!(met(&out, "POST /tasks: gateway throughput vs HAProxy jwt_verify"), "equal is met");
        // 1.09x and 1.12x its GET: the bound is 1.1x, not 1.2x.
        assert!(met(&out, "PUT /tasks/{id}: gateway CPU per request vs its GET /tasks/{id}"));
        assert!(!met(&out, "POST /tasks: gateway CPU per request vs its GET /tasks/{id}"));
        let get = out.iter().find(|t| t.name.starts_with("GET /tasks/{id}: gateway CPU")).map(|t| t.value.clone());
        assert_eq!(get.as_deref(), Some("0.040 vs 0.045 ms (0.89x; goal 0.8x not met)"));
        let put = out.iter().find(|t| t.name.starts_with("PUT /tasks/{id}: gateway CPU per request vs its GET"));
        assert_eq!(
            put.map(|t| t.value.as_str()),
            Some("1.09x (0.044 vs 0.040 ms; HAProxy jwt_verify 0.96x)"),
            "the peer's own PUT against its GET beside the gateway's"
        );
    }
}
