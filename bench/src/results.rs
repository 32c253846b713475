//! What a run measured: one [`Cell`] per workload and path, the login, network and revocation
//! figures, the targets, and the whole [`Results`] (written as JSON, read by report.rs).

use std::collections::BTreeMap;
use std::ops::Add;

use serde::Serialize;

use crate::perf;
use crate::procstat::ProcessCounters;
use crate::relay;

/// Counters of one process (or a group) per request of a cell, from the difference of two
/// [`ProcessCounters`] samples. Unlike wall-clock rates these hardly move with the machine's
/// noise, so a change can be judged on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerRequest {
    /// Voluntary context switches (waits: epoll, I/O, locks) per request.
    pub voluntary_switches: f64,
    /// Involuntary context switches (preemptions) per request: these follow the CPU contention.
    pub involuntary_switches: f64,
    /// System calls entered per request (perf, `raw_syscalls:sys_enter`); `None`: not counted
    /// (perf cannot here, or the process is not one the cell attaches perf to).
    pub syscalls: Option<f64>,
    /// Instructions retired per request (perf, `instructions`); `None`: not counted (no
    /// hardware counters in most VMs).
    pub instructions: Option<f64>,
    /// Heap allocations per request (the gateway's counting allocator, scraped from its
    /// metrics); `None`: a process without that build.
    pub heap_allocations: Option<f64>,
    /// Heap bytes allocated per request (same source as `heap_allocations`).
    pub heap_bytes: Option<f64>,
}

/// The sum of two optional figures: either alone when the other is missing.
fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// The median of the figures present; `None` when none is.
fn median_opt(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| median(present))
}

impl PerRequest {
    /// `delta` (what happened during the cell) divided by the cell's `requests`; 0 when none.
    pub fn from_counters(delta: &ProcessCounters, requests: u64) -> Self {
        let per = |x: u64| if requests == 0 { 0.0 } else { x as f64 / requests as f64 };
        PerRequest {
            voluntary_switches: per(delta.voluntary_switches),
            involuntary_switches: per(delta.involuntary_switches),
            ..Default::default()
        }
    }

    /// Adds `count` (what happened during a cell of `requests`), per request, with `set`.
    pub fn with_count(mut self, count: Option<u64>, requests: u64, set: fn(&mut Self, Option<f64>)) -> Self {
        set(&mut self, count.filter(|_| requests > 0).map(|n| n as f64 / requests as f64));
        self
    }

    /// Context switches of both kinds per request.
    pub fn context_switches(&self) -> f64 {
        self.voluntary_switches + self.involuntary_switches
    }

    /// The median of each field over `rounds`.
    fn median(rounds: impl Iterator<Item = Self> + Clone) -> Self {
        PerRequest {
            voluntary_switches: median(rounds.clone().map(|p| p.voluntary_switches).collect()),
            involuntary_switches: median(rounds.clone().map(|p| p.involuntary_switches).collect()),
            syscalls: median_opt(rounds.clone().map(|p| p.syscalls)),
            instructions: median_opt(rounds.clone().map(|p| p.instructions)),
            heap_allocations: median_opt(rounds.clone().map(|p| p.heap_allocations)),
            heap_bytes: median_opt(rounds.map(|p| p.heap_bytes)),
        }
    }
}

impl Add for PerRequest {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        PerRequest {
            voluntary_switches: self.voluntary_switches + o.voluntary_switches,
            involuntary_switches: self.involuntary_switches + o.involuntary_switches,
            syscalls: add_opt(self.syscalls, o.syscalls),
            instructions: add_opt(self.instructions, o.instructions),
            heap_allocations: add_opt(self.heap_allocations, o.heap_allocations),
            heap_bytes: add_opt(self.heap_bytes, o.heap_bytes),
        }
    }
}

/// What the network relays measured.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    /// The one-way delay asked of the relays.
    pub delay_ms: f64,
    /// Holds the relays actually applied during the VPC cells (every chunk, both relays).
    pub holds: relay::HoldSummary,
    /// What `tokio::time::sleep(delay)` sleeps here: (p50, p99) ms.
    pub tokio_sleep_ms: (f64, f64),
}

/// Issue 9's revocation cost, from the gateway with many live revocations.
#[derive(Debug, Clone, Serialize)]
pub struct RevocationCost {
    pub seeded: u64,
    /// `gateway_revocations_live` of that gateway once it had pulled.
    pub live_in_gateway: i64,
    /// Bytes auth-svc sent for the first, full pull (all pages; HTTP heads included).
    pub full_pull_bytes: u64,
    /// Bytes auth-svc sent per pull in steady state (nothing changed).
    pub empty_pull_bytes: f64,
    /// Steady-state pulls the figure above is averaged over.
    pub steady_pulls: u64,
}

/// One workload through one path: wrk's figures and each process's cost per request.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub workload: String,
    pub path: String,
    pub connections: u32,
    pub duration_s: f64,
    pub requests: u64,
    pub rps: f64,
    /// p50, p90, p99, max and mean, ms.
    pub latency_ms: BTreeMap<&'static str, f64>,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub statuses: BTreeMap<String, u64>,
    /// Statuses this cell may answer besides 2xx (login: 401, 503).
    pub allowed: Vec<u16>,
    pub ok: bool,
    /// CPU seconds per 1,000 requests (= CPU ms per request) of each process (postgres: the
    /// postmaster and its backends; wrk: the load generator).
    pub cpu_s_per_1k: BTreeMap<String, f64>,
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Other counters per request of each process (wrk has none).
    pub per_request: BTreeMap<String, PerRequest>,
    pub validate_calls_per_1k: f64,
    /// The processes the path puts in front of task-svc, and their CPU and counters together.
    pub edges: Vec<String>,
    pub edge_cpu_s_per_1k: f64,
    pub edge_per_request: PerRequest,
    /// req/s of each round, when there were several (`rps` is their median).
    pub rounds: Vec<f64>,
}

/// The cell of `workload` through `path`, if it ran.
pub fn find<'a>(cells: &'a [Cell], workload: &str, path: &str) -> Option<&'a Cell> {
    cells.iter().find(|c| c.workload == workload && c.path == path)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl Cell {
    /// One cell from its rounds: the median of each rate, percentile and per-request figure,
    /// the worst of the maxima, peaks and auth-svc calls, the sum of the counts.
    pub fn from_rounds(rounds: Vec<Cell>) -> Cell {
        if rounds.len() <= 1 {
            return rounds.into_iter().next().unwrap_or_else(|| unreachable!("a cell has at least one round"));
        }
        let mut cell = rounds[0].clone();
        cell.rounds = rounds.iter().map(|c| c.rps).collect();
        cell.rps = median(rounds.iter().map(|c| c.rps).collect());
        for key in ["p50", "p90", "p99", "mean"] {
            cell.latency_ms.insert(key, median(rounds.iter().map(|c| c.latency_ms[key]).collect()));
        }
        cell.latency_ms.insert("max", rounds.iter().map(|c| c.latency_ms["max"]).fold(0.0, f64::max));
        cell.requests = rounds.iter().map(|c| c.requests).sum();
        cell.duration_s = rounds.iter().map(|c| c.duration_s).sum();
        cell.non_2xx = rounds.iter().map(|c| c.non_2xx).sum();
        cell.socket_errors = rounds.iter().map(|c| c.socket_errors).sum();
        cell.ok = rounds.iter().all(|c| c.ok);
        cell.validate_calls_per_1k = rounds.iter().map(|c| c.validate_calls_per_1k).fold(0.0, f64::max);
        cell.edge_cpu_s_per_1k = median(rounds.iter().map(|c| c.edge_cpu_s_per_1k).collect());
        cell.edge_per_request = PerRequest::median(rounds.iter().map(|c| c.edge_per_request));
        for (k, v) in cell.cpu_s_per_1k.iter_mut() {
            *v = median(rounds.iter().filter_map(|c| c.cpu_s_per_1k.get(k).copied()).collect());
        }
        for (k, v) in cell.per_request.iter_mut() {
            *v = PerRequest::median(rounds.iter().filter_map(|c| c.per_request.get(k).copied()));
        }
        for (k, v) in cell.peak_rss_mib.iter_mut() {
            *v = rounds.iter().filter_map(|c| c.peak_rss_mib.get(k).copied()).fold(0.0, f64::max);
        }
        cell
    }
}

/// The login cells' figures: hashing capacity and behaviour under a flood.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    pub permits: usize,
    pub time_per_hash_ms: f64,
    pub theoretical_rps: f64,
    pub measured_rps: f64,
    pub measured_connections: u32,
    pub ratio: f64,
    pub flood_connections: u32,
    pub flood_statuses: BTreeMap<String, u64>,
    pub flood_completed_rps: f64,
    pub auth_rss_mib_measured: f64,
    pub auth_rss_mib_flood: f64,
}

/// One target of the issues, evaluated on this run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: bool,
}

/// The whole run, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub date: String,
    pub command: String,
    pub mode: &'static str,
    pub bin_dir: String,
    pub commit: String,
    pub machine: BTreeMap<&'static str, String>,
    pub settings: BTreeMap<&'static str, String>,
    pub ready_ms: BTreeMap<String, f64>,
    pub cells: Vec<Cell>,
    pub login: Option<Login>,
    pub network: Option<Network>,
    pub revocations: Option<RevocationCost>,
    /// Whether perf could count system calls and instructions in this run ("" yes, else why).
    pub counting: perf::Availability,
    /// `--callgrind`: instructions per request of each edge under callgrind (empty without).
    pub callgrind: Vec<crate::callgrind::CallgrindFigure>,
    pub targets: Vec<Target>,
    pub problems: Vec<String>,
    pub elapsed_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(rps: f64, p99: f64, switches: f64, ok: bool) -> Cell {
        let per = PerRequest {
            voluntary_switches: switches,
            involuntary_switches: switches / 2.0,
            syscalls: Some(switches * 10.0),
            ..Default::default()
        };
        Cell {
            workload: "get".into(),
            path: "gateway".into(),
            connections: 1,
            duration_s: 1.0,
            requests: 100,
            rps,
            latency_ms: BTreeMap::from([("p50", p99 / 2.0), ("p90", p99), ("p99", p99), ("max", p99), ("mean", 1.0)]),
            non_2xx: 0,
            socket_errors: 0,
            statuses: BTreeMap::new(),
            allowed: Vec::new(),
            ok,
            cpu_s_per_1k: BTreeMap::from([("gateway".to_owned(), rps / 1000.0)]),
            peak_rss_mib: BTreeMap::from([("gateway".to_owned(), p99)]),
            per_request: BTreeMap::from([("gateway".to_owned(), per)]),
            validate_calls_per_1k: 0.0,
            edges: vec!["gateway".into()],
            edge_cpu_s_per_1k: rps / 1000.0,
            edge_per_request: per,
            rounds: Vec::new(),
        }
    }

    #[test]
    fn rounds_merge_into_medians_maxima_and_sums() {
        let merged = Cell::from_rounds(vec![
            cell(100.0, 3.0, 1.0, true),
            cell(300.0, 9.0, 3.0, false),
            cell(200.0, 6.0, 2.0, true),
        ]);
        assert_eq!(merged.rounds, [100.0, 300.0, 200.0]);
        assert_eq!((merged.rps, merged.latency_ms["p99"], merged.latency_ms["max"]), (200.0, 6.0, 9.0));
        assert_eq!((merged.requests, merged.ok), (300, false));
        assert_eq!(
            (merged.edge_cpu_s_per_1k, merged.cpu_s_per_1k["gateway"], merged.peak_rss_mib["gateway"]),
            (0.2, 0.2, 9.0)
        );
        let two = PerRequest {
            voluntary_switches: 2.0,
            involuntary_switches: 1.0,
            syscalls: Some(20.0),
            ..Default::default()
        };
        assert_eq!((merged.edge_per_request, merged.per_request["gateway"]), (two, two));
    }

    #[test]
    fn per_request_divides_by_requests() {
        let delta = ProcessCounters { voluntary_switches: 30, involuntary_switches: 10, ..Default::default() };
        let per = PerRequest::from_counters(&delta, 20);
        assert_eq!((per.voluntary_switches, per.involuntary_switches, per.context_switches()), (1.5, 0.5, 2.0));
        assert_eq!(PerRequest::from_counters(&delta, 0), PerRequest::default());
        let counted = per.with_count(Some(50), 20, |p, v| p.syscalls = v);
        assert_eq!((counted.syscalls, counted.instructions), (Some(2.5), None));
        assert_eq!(per.with_count(Some(50), 0, |p, v| p.syscalls = v).syscalls, None);
    }

    #[test]
    fn missing_figures_stay_missing_when_summed_or_merged() {
        let gateway = PerRequest { syscalls: Some(4.0), heap_allocations: Some(30.0), ..Default::default() };
        let door = PerRequest { syscalls: Some(6.0), ..Default::default() };
        let edge = gateway + door;
        assert_eq!((edge.syscalls, edge.heap_allocations, edge.instructions), (Some(10.0), Some(30.0), None));
        let merged = PerRequest::median([door, PerRequest::default(), gateway].into_iter());
        assert_eq!((merged.syscalls, merged.instructions), (Some(6.0), None));
    }
}
