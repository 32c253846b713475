//! One cell: a wrk load through one route, with every watched process's CPU, counters, peak
//! RSS and auth-svc's validation calls taken around it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::routes::Route;
use super::sample::{Sample, Watched};
use crate::options::Options;
use crate::perf::{self, PerfCounts};
use crate::procstat::{self, ProcessCounters};
use crate::results::{Cell, PerRequest};
use crate::scrape;
use crate::seed;
use crate::stack::BenchStack;
use crate::wrk::{self, Load};

/// What measuring a cell needs: the run's options, the data the seed wrote and the processes
/// to watch.
pub struct Meter<'a> {
    pub o: &'a Options,
    pub lua_dir: PathBuf,
    /// Where the seed wrote users.txt and tasks.txt.
    pub data_dir: PathBuf,
    pub stack: &'a BenchStack,
    pub watched: Vec<Watched>,
    /// The postmaster's pid.
    pub postgres: Option<u32>,
    /// Clock ticks per second (the unit of the CPU counters).
    pub ticks: f64,
    /// What perf can count here (a cell attaches it only when it can count something).
    pub perf: perf::Availability,
}

/// A gateway's heap counters (allocations, bytes) from its metrics; `None` without the
/// `count-allocations` build (or without metrics).
async fn heap(metrics: Option<std::net::SocketAddr>) -> Option<(f64, f64)> {
    let allocations = scrape::sum(metrics, "gateway_heap_allocations_total", "").await;
    let bytes = scrape::sum(metrics, "gateway_heap_allocated_bytes_total", "").await;
    // A family absent from the exposition sums to 0: the counters start above 0 (the gateway
    // allocated while starting), so 0 means "not this build".
    (allocations > 0.0 && bytes > 0.0).then_some((allocations, bytes))
}

/// Requests answered with a status other than 2xx, and those of them not in `allowed`.
fn non_2xx(run: &wrk::Run, allowed: &[u16]) -> (u64, u64) {
    if run.statuses.is_empty() {
        // Uncounted statuses: wrk's own "non-2xx or 3xx" count, none allowed.
        return (run.errors.status, if allowed.is_empty() { run.errors.status } else { 0 });
    }
    let bad = |unexpected_only: bool| -> u64 {
        run.statuses
            .iter()
            .filter(|(s, _)| !s.starts_with('2'))
            .filter(|(s, _)| !unexpected_only || !allowed.iter().any(|a| a.to_string() == **s))
            .map(|(_, n)| n)
            .sum()
    };
    (bad(false), bad(true))
}

/// What the processes spent during one cell (see [`Cell`]'s fields of the same names).
struct Costs {
    cpu_s_per_1k: BTreeMap<String, f64>,
    per_request: BTreeMap<String, PerRequest>,
    edge_cpu_s_per_1k: f64,
    edge_per_request: PerRequest,
    peak_rss_mib: BTreeMap<String, f64>,
    validate_calls_per_1k: f64,
}

/// What a cell counted besides /proc: perf's counts and the gateways' heap counters (their
/// differences over the cell), by process name.
#[derive(Default)]
struct Counted {
    perf: BTreeMap<String, PerfCounts>,
    heap: BTreeMap<String, (f64, f64)>,
}

/// The cell of `workload` through `route` from wrk's `run` and the processes' `costs`.
fn cell_of(workload: &str, route: &Route, connections: u32, allowed: &[u16], run: &wrk::Run, costs: Costs) -> Cell {
    let (non_2xx, unexpected) = non_2xx(run, allowed);
    let ms = |us: u64| us as f64 / 1000.0;
    Cell {
        workload: workload.to_owned(),
        path: route.name.to_owned(),
        connections,
        duration_s: run.duration_us as f64 / 1e6,
        requests: run.requests,
        rps: run.rps(),
        latency_ms: BTreeMap::from([
            ("p50", ms(run.latency_us.p50)),
            ("p90", ms(run.latency_us.p90)),
            ("p99", ms(run.latency_us.p99)),
            ("max", ms(run.latency_us.max)),
            ("mean", run.latency_us.mean / 1000.0),
        ]),
        non_2xx,
        socket_errors: run.socket_errors(),
        statuses: run.statuses.clone(),
        allowed: allowed.to_vec(),
        ok: unexpected == 0 && run.socket_errors() == 0 && run.requests > 0,
        cpu_s_per_1k: costs.cpu_s_per_1k,
        peak_rss_mib: costs.peak_rss_mib,
        per_request: costs.per_request,
        validate_calls_per_1k: costs.validate_calls_per_1k,
        edges: route.edges.iter().map(|e| (*e).to_owned()).collect(),
        edge_cpu_s_per_1k: costs.edge_cpu_s_per_1k,
        edge_per_request: costs.edge_per_request,
        rounds: Vec::new(),
    }
}

impl Meter<'_> {
    /// Runs one cell: optional warm-up, then the measured wrk run with CPU, counters, RSS and
    /// auth-svc call counts taken around it. Returns the cell and wrk's own figures.
    pub async fn cell(
        &self,
        workload: &str,
        route: &Route,
        load: Load<'static>,
        allowed: &[u16],
        warmup: Duration,
    ) -> Result<(Cell, wrk::Run)> {
        if !warmup.is_zero() {
            let warm = Load { duration: warmup, args: load.args.clone(), url: load.url.clone(), ..load };
            self.wrk(warm).await?;
        }
        for w in &self.watched {
            procstat::reset_peak_rss(w.pid);
        }
        let calls_before = self.validate_calls().await;
        let heap_before = self.heaps(route).await;
        let session = self.perf.any().then(|| perf::Session::start(&self.counted(workload, route)));
        if session.is_some() {
            // perf gives no signal that it has attached; it takes a few ms.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = Sample::take(&self.watched, self.postgres);
        let connections = load.connections;
        let run = self.wrk(load).await?;
        let used = Sample::take(&self.watched, self.postgres).since(&before);
        let perf = session.map(perf::Session::finish).unwrap_or_default();
        let calls = self.validate_calls().await - calls_before;
        let mut heap = self.heaps(route).await;
        for (name, (allocations, bytes)) in heap.iter_mut() {
            let (a0, b0) = heap_before.get(name).copied().unwrap_or_default();
            (*allocations, *bytes) = (*allocations - a0, *bytes - b0);
        }
        let costs = self.costs(route, &run, &used, calls, &Counted { perf, heap });
        let cell = cell_of(workload, route, connections, allowed, &run, costs);
        eprintln!(
            "    {:<7} {:<16} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  non-2xx {}{}",
            workload,
            route.name,
            cell.rps,
            cell.latency_ms["p50"],
            cell.latency_ms["p99"],
            cell.non_2xx,
            if cell.ok { "" } else { "  <-- unexpected answers or socket errors" }
        );
        Ok((cell, run))
    }

    async fn wrk(&self, load: Load<'static>) -> Result<wrk::Run> {
        let lua = self.lua_dir.clone();
        tokio::task::spawn_blocking(move || wrk::run(&lua, &load)).await?
    }

    /// auth-svc's `POST /auth/validate` calls so far (0 when it has no metrics endpoint).
    async fn validate_calls(&self) -> f64 {
        let Some(metrics) = self.stack.auth.metrics else { return 0.0 };
        scrape::sum(Some(metrics), "http_requests_total", r#"route="/auth/validate""#).await
    }

    /// The processes perf counts during a cell: the path's edges and the service behind them.
    fn counted(&self, workload: &str, route: &Route) -> Vec<(String, u32)> {
        let service = match workload {
            w if w.starts_with("login") => "auth-svc",
            "get-vpc" => "task-svc-vpc",
            _ => "task-svc",
        };
        let names: Vec<&str> = route.edges.iter().copied().chain([service]).collect();
        self.watched.iter().filter(|w| names.contains(&w.name)).map(|w| (w.name.to_owned(), w.pid)).collect()
    }

    /// The heap counters of the path's edges that serve them.
    async fn heaps(&self, route: &Route) -> BTreeMap<String, (f64, f64)> {
        let mut out = BTreeMap::new();
        for w in self.watched.iter().filter(|w| route.edges.contains(&w.name)) {
            if let Some(counts) = heap(w.metrics).await {
                out.insert(w.name.to_owned(), counts);
            }
        }
        out
    }

    /// What each watched process spent per request of `run`, from the counters it `used` and
    /// those `counted` besides.
    fn costs(
        &self,
        route: &Route,
        run: &wrk::Run,
        used: &BTreeMap<String, ProcessCounters>,
        calls: f64,
        counted: &Counted,
    ) -> Costs {
        let per_1k = |x: f64| if run.requests == 0 { 0.0 } else { x * 1000.0 / run.requests as f64 };
        let cpu_s_per_1k: BTreeMap<String, f64> =
            used.iter().map(|(k, c)| (k.clone(), per_1k(c.cpu_ticks() as f64 / self.ticks))).collect();
        // wrk's counters are those of this process's finished children: CPU only.
        let per_request: BTreeMap<String, PerRequest> = used
            .iter()
            .filter(|(k, _)| *k != "wrk")
            .map(|(k, c)| {
                let n = run.requests;
                let perf = counted.perf.get(k).copied().unwrap_or_default();
                let heap = counted.heap.get(k).map(|&(a, b)| (a.max(0.0) as u64, b.max(0.0) as u64));
                let per = PerRequest::from_counters(c, n)
                    .with_count(perf.syscalls, n, |p, v| p.syscalls = v)
                    .with_count(perf.instructions, n, |p, v| p.instructions = v)
                    .with_count(heap.map(|h| h.0), n, |p, v| p.heap_allocations = v)
                    .with_count(heap.map(|h| h.1), n, |p, v| p.heap_bytes = v);
                (k.clone(), per)
            })
            .collect();
        let peak_rss_mib = self
            .watched
            .iter()
            .filter_map(|w| procstat::peak_rss_kib(w.pid).ok().map(|k| (w.name.to_owned(), k as f64 / 1024.0)))
            .collect();
        Costs {
            edge_cpu_s_per_1k: route.edges.iter().filter_map(|e| cpu_s_per_1k.get(*e)).sum(),
            edge_per_request: route
                .edges
                .iter()
                .filter_map(|e| per_request.get(*e))
                .fold(PerRequest::default(), |a, b| a + *b),
            cpu_s_per_1k,
            per_request,
            peak_rss_mib,
            validate_calls_per_1k: per_1k(calls),
        }
    }

    /// The wrk load of a task workload through `route`.
    pub fn task_load(&self, workload: &str, route: &Route) -> Load<'static> {
        let data = self.data_dir.join("tasks.txt").to_string_lossy().into_owned();
        let (script, url, args) = if workload == "health" {
            ("health.lua", format!("{}/tasks/health", route.url), Vec::new())
        } else {
            let w = if workload.starts_with("get-") { "get" } else { workload };
            ("tasks.lua", format!("{}/tasks", route.url), vec![w.to_owned(), route.mode.to_owned(), data])
        };
        let paced = workload == "get-paced" || workload == "get-vpc";
        Load {
            url,
            script,
            args,
            threads: self.o.threads,
            // The VPC cell: half the connections, so the fixed load stays far from saturation
            // on the paths with more hops.
            connections: if workload == "get-vpc" { (self.o.connections / 2).max(1) } else { self.o.connections },
            duration: self.o.duration,
            count_statuses: false,
            delay_ms: paced.then_some(self.o.paced_delay_ms),
        }
    }

    /// The wrk load of logins against auth-svc at `url`: the seeded users, every 10th request
    /// with a wrong password.
    pub fn login_load(&self, url: &str, connections: u32, duration: Duration) -> Load<'static> {
        let users = self.data_dir.join("users.txt").to_string_lossy().into_owned();
        Load {
            url: format!("{url}/auth/login"),
            script: "login.lua",
            args: vec![users, seed::PASSWORD.to_owned(), "10".to_owned()],
            threads: self.o.threads.max(if connections > 50 { 2 } else { 1 }),
            connections,
            duration,
            count_statuses: true,
            delay_ms: None,
        }
    }
}
