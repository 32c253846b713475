//! One benchmark run: build, start, seed, measure every cell, report.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use devstack::postgres::Durability;
use serde::Serialize;

use crate::options::Options;
use crate::relay;
use crate::report;
use crate::seed;
use crate::stack::{self, BenchStack};
use crate::wrk;
use crate::{procstat, wrk::Load};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    manifest_dir().parent().map(Path::to_path_buf).unwrap_or_else(manifest_dir)
}

/// auth-svc, task-svc and gateway: `--bin-dir`, else `target/<profile>` beside this binary,
/// else this binary's own directory.
fn bin_dir(o: &Options) -> Result<PathBuf> {
    if let Some(dir) = &o.bin_dir {
        return Ok(dir.clone());
    }
    let own = devstack::process::bin_dir()?;
    match &o.profile {
        Some(profile) => Ok(own.parent().context("binary directory has no parent")?.join(profile)),
        None => Ok(own),
    }
}

/// Builds the services in release with the workspace-wide feature resolution of
/// `cargo run --release --bin bench` (devstack::build): it compiles no dependency twice.
fn build_release() -> Result<()> {
    let mut cmd = devstack::build::services(devstack::build::Profile::Release);
    eprintln!("==> {}", devstack::build::describe(&cmd));
    if !cmd.status()?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

/// A process whose CPU and memory each cell records.
struct Watched {
    name: &'static str,
    pid: u32,
}

/// A way into the system.
struct Route {
    name: &'static str,
    url: String,
    /// bearer: the client's token; identity: X-User-Id straight into task-svc.
    mode: &'static str,
    /// The processes this path adds in front of task-svc (their CPU and memory are the cost).
    edges: &'static [&'static str],
    /// The workloads that visit this path.
    workloads: &'static [&'static str],
}

/// Every task workload but the VPC one.
const ALL: &[&str] = &["health", "get", "get-paced", "list", "put", "post"];
/// The task workloads, in run order (POST last: it grows the users' lists, which GET /tasks
/// reads).
const TASK_WORKLOADS: [&str; 7] = ["health", "get", "get-paced", "get-vpc", "list", "put", "post"];

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

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub workload: String,
    pub path: String,
    pub connections: u32,
    pub duration_s: f64,
    pub requests: u64,
    pub rps: f64,
    pub latency_ms: BTreeMap<&'static str, f64>,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub statuses: BTreeMap<String, u64>,
    /// Statuses this cell may answer besides 2xx (login: 401, 503).
    pub allowed: Vec<u16>,
    pub ok: bool,
    pub cpu_s_per_1k: BTreeMap<String, f64>,
    pub peak_rss_mib: BTreeMap<String, f64>,
    pub validate_calls_per_1k: f64,
    /// The processes the path puts in front of task-svc, and their CPU together.
    pub edges: Vec<String>,
    pub edge_cpu_s_per_1k: f64,
    /// req/s of each round, when there were several (`rps` is their median).
    pub rounds: Vec<f64>,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: bool,
}

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
    pub targets: Vec<Target>,
    pub problems: Vec<String>,
    pub elapsed_s: f64,
}

async fn validate_calls(stack: &BenchStack) -> f64 {
    let Some(metrics) = stack.auth.metrics else { return 0.0 };
    let Ok(r) = reqwest::get(format!("http://{metrics}/metrics")).await else { return f64::NAN };
    let Ok(text) = r.text().await else { return f64::NAN };
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(r#"route="/auth/validate""#))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The sum of the samples of `family` (lines starting with it, label filter `labels`) on a
/// Prometheus endpoint; NaN when it cannot be read.
async fn metric(addr: Option<std::net::SocketAddr>, family: &str, labels: &str) -> f64 {
    let Some(addr) = addr else { return f64::NAN };
    let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await else { return f64::NAN };
    let Ok(text) = r.text().await else { return f64::NAN };
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Waits until the revoked gateway holds every seeded revocation; then the bytes its pulls
/// have moved so far and its successful pulls.
async fn revocations_pulled(stack: &BenchStack) -> Result<(i64, u64, f64)> {
    let r = &stack.revoked;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live = metric(r.gateway.metrics, "gateway_revocations_live", "").await;
        if live >= r.seeded as f64 {
            let pulls = metric(r.gateway.metrics, "gateway_revocation_pulls_total", r#"outcome="success""#).await;
            return Ok((live as i64, r.relay.bytes.get().1, pulls));
        }
        if Instant::now() > deadline {
            bail!("gateway-revoked holds {live} of {} revocations after 120 s", r.seeded);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cpu_snapshot(watched: &[Watched], postgres: Option<u32>) -> HashMap<String, u64> {
    let mut snap = HashMap::new();
    for w in watched {
        snap.insert(w.name.to_owned(), procstat::cpu_ticks(w.pid).unwrap_or(0));
    }
    if let Some(pm) = postgres {
        for pid in procstat::with_children(pm) {
            snap.insert(format!("pg:{pid}"), procstat::cpu_ticks(pid).unwrap_or(0));
        }
    }
    snap.insert("wrk".into(), procstat::children_cpu_ticks().unwrap_or(0));
    snap
}

fn cpu_delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (k, v) in after {
        let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
        let key = if k.starts_with("pg:") { "postgres".to_owned() } else { k.clone() };
        *out.entry(key).or_insert(0) += d;
    }
    out
}

struct Ctx<'a> {
    o: &'a Options,
    lua_dir: PathBuf,
    data_dir: PathBuf,
    stack: &'a BenchStack,
    watched: Vec<Watched>,
    postgres: Option<u32>,
    ticks: f64,
}

impl Ctx<'_> {
    /// Runs one cell: optional warm-up, then the measured wrk run with CPU, RSS and auth-svc
    /// call counts taken around it.
    async fn cell(
        &self,
        workload: &str,
        route: &Route,
        load: Load<'static>,
        allowed: &[u16],
        warmup: Duration,
    ) -> Result<(Cell, wrk::Run)> {
        if !warmup.is_zero() {
            let warm = Load { duration: warmup, args: load.args.clone(), url: load.url.clone(), ..load };
            let lua = self.lua_dir.clone();
            tokio::task::spawn_blocking(move || wrk::run(&lua, &warm)).await??;
        }
        for w in &self.watched {
            procstat::reset_peak_rss(w.pid);
        }
        let calls_before = validate_calls(self.stack).await;
        let before = cpu_snapshot(&self.watched, self.postgres);
        let lua = self.lua_dir.clone();
        let connections = load.connections;
        let run = tokio::task::spawn_blocking(move || wrk::run(&lua, &load)).await??;
        let after = cpu_snapshot(&self.watched, self.postgres);
        let calls_after = validate_calls(self.stack).await;
        let per_1k = |x: f64| if run.requests == 0 { 0.0 } else { x * 1000.0 / run.requests as f64 };
        let cpu_s_per_1k: BTreeMap<String, f64> =
            cpu_delta(&before, &after).into_iter().map(|(k, t)| (k, per_1k(t as f64 / self.ticks))).collect();
        let edge_cpu_s_per_1k = route.edges.iter().filter_map(|e| cpu_s_per_1k.get(*e)).sum();
        let peak_rss_mib = self
            .watched
            .iter()
            .filter_map(|w| procstat::peak_rss_kib(w.pid).ok().map(|k| (w.name.to_owned(), k as f64 / 1024.0)))
            .collect();
        let non_2xx = if run.statuses.is_empty() {
            run.errors.status
        } else {
            run.statuses.iter().filter(|(s, _)| !s.starts_with('2')).map(|(_, n)| n).sum()
        };
        let unexpected: u64 = if run.statuses.is_empty() {
            if allowed.is_empty() { run.errors.status } else { 0 }
        } else {
            run.statuses
                .iter()
                .filter(|(s, _)| !s.starts_with('2') && !allowed.iter().any(|a| a.to_string() == **s))
                .map(|(_, n)| n)
                .sum()
        };
        let ms = |us: u64| us as f64 / 1000.0;
        let cell = Cell {
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
            cpu_s_per_1k,
            peak_rss_mib,
            validate_calls_per_1k: per_1k(calls_after - calls_before),
            edges: route.edges.iter().map(|e| (*e).to_owned()).collect(),
            edge_cpu_s_per_1k,
            rounds: Vec::new(),
        };
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

    fn task_load(&self, workload: &str, route: &Route) -> Load<'static> {
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

    fn login_load(&self, url: &str, connections: u32, duration: Duration) -> Load<'static> {
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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One cell from its rounds: the median of each rate and percentile, the worst of the maxima,
/// peaks and auth-svc calls, the sum of the counts.
fn merge_rounds(rounds: Vec<Cell>) -> Cell {
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
    for (k, v) in cell.cpu_s_per_1k.iter_mut() {
        *v = median(rounds.iter().filter_map(|c| c.cpu_s_per_1k.get(k).copied()).collect());
    }
    for (k, v) in cell.peak_rss_mib.iter_mut() {
        *v = rounds.iter().filter_map(|c| c.peak_rss_mib.get(k).copied()).fold(0.0, f64::max);
    }
    cell
}

fn machine() -> BTreeMap<&'static str, String> {
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
    let command_out = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
            })
            .unwrap_or_default()
    };
    BTreeMap::from([
        ("cpus", cpus.to_string()),
        ("cpu_model", model),
        ("memory_gib", format!("{:.1}", mem_kib as f64 / 1024.0 / 1024.0)),
        ("kernel", command_out("uname", &["-r"])),
        ("wrk", command_out("wrk", &["--version"])),
        (
            "note",
            format!("{cpus} cores shared by the load generator (wrk), the services and PostgreSQL; loopback only"),
        ),
    ])
}

pub async fn run(o: Options) -> Result<()> {
    let started = Instant::now();
    wrk::check_installed()?;
    if !o.no_build && o.bin_dir.is_none() && o.profile.as_deref().is_none_or(|p| p == "release") {
        build_release()?;
    }
    let bin_dir = bin_dir(&o)?;
    let self_exe = std::env::current_exe()?;
    let lua_dir = manifest_dir().join("lua");
    let sidecar = workspace_root().join("sidecar.toml");
    let run_dir = std::env::temp_dir().join(format!("taskmgmt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("==> run directory {} (binaries from {})", run_dir.display(), bin_dir.display());

    let durability = if o.durable { Durability::Durable } else { Durability::Fast };
    let start = stack::StartOptions {
        bin_dir: &bin_dir,
        self_exe: &self_exe,
        run_dir: &run_dir,
        sidecar: &sidecar,
        durability,
        extra_env: &o.env,
        sidecar_set: &o.sidecar_set,
        baseline_bin: o.baseline_bin.as_deref(),
        haproxy: &o.haproxy,
        revocations: o.revocations,
        vpc_delay: o.vpc_delay,
        unix_upstream: o.unix_upstream,
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let stack =
        stack::start(&start).await.with_context(|| format!("starting the stack (logs in {})", run_dir.display()))?;
    let ready_ms: BTreeMap<String, f64> =
        stack.services().iter().map(|s| (s.name.to_owned(), s.ready.as_secs_f64() * 1000.0)).collect();
    for (name, ms) in &ready_ms {
        eprintln!("    {name:<16} ready {ms:.1} ms after spawn");
    }

    eprintln!("==> seeding {} users x {} tasks", o.users, o.tasks_per_user);
    let users =
        seed::seed(&stack.auth.url(), &stack.task.url(), &stack.database_url, o.users, o.tasks_per_user).await?;
    seed::write_data(&run_dir, &users)?;

    let postgres = stack.postgres_pid(&run_dir);
    let watched = stack.services().iter().map(|s| Watched { name: s.name, pid: s.pid() }).collect();
    let (live_in_gateway, full_bytes_seen, pulls_seen) = revocations_pulled(&stack).await?;
    eprintln!(
        "    gateway-revoked holds {live_in_gateway} revocations ({full_bytes_seen} bytes pulled in {pulls_seen} pulls)"
    );
    let tokio_sleep_ms = relay::tokio_sleep_overshoot(o.vpc_delay, if o.quick { 50 } else { 400 }).await;
    let ctx = Ctx {
        o: &o,
        lua_dir,
        data_dir: run_dir.clone(),
        stack: &stack,
        watched,
        postgres,
        ticks: procstat::clock_ticks(),
    };

    let door_url = o.front_door.as_ref().map_or_else(|| stack.front_door.url(), |u| u.trim_end_matches('/').to_owned());
    let vpc = &stack.vpc;
    let vpc_only: &[&str] = &["get-vpc"];
    let mut routes = vec![
        Route { name: "direct", url: stack.task.url(), mode: "identity", edges: &[], workloads: ALL },
        Route { name: "gateway", url: stack.gateway.url(), mode: "bearer", edges: &["gateway"], workloads: ALL },
        Route {
            name: "gateway-uds",
            url: stack.gateway_uds.url(),
            mode: "bearer",
            edges: &["gateway-uds"],
            workloads: &["get"],
        },
        Route {
            name: "gateway-nocache",
            url: stack.gateway_nocache.url(),
            mode: "bearer",
            edges: &["gateway-nocache"],
            workloads: &["get"],
        },
    ];
    if let Some(before) = &stack.gateway_before {
        routes.push(Route {
            name: "gateway-before",
            url: before.url(),
            mode: "bearer",
            edges: &["gateway-before"],
            workloads: &["health", "get", "put", "post"],
        });
    }
    routes.extend([
        Route {
            name: "gateway-revoked",
            url: stack.revoked.gateway.url(),
            mode: "bearer",
            edges: &["gateway-revoked"],
            workloads: &["get"],
        },
        Route {
            name: "haproxy",
            url: stack.haproxy.url(),
            mode: "identity",
            edges: &["haproxy"],
            workloads: &["health", "get"],
        },
        Route {
            name: "haproxy-jwt",
            url: stack.haproxy_jwt.url(),
            mode: "bearer",
            edges: &["haproxy-jwt"],
            workloads: ALL,
        },
        Route {
            name: "validate",
            url: stack.validate_proxy.url(),
            mode: "bearer",
            edges: &["validate-proxy"],
            workloads: ALL,
        },
        // Client -> front door (ALB stand-in) -> gateway -> task-svc, as on ECS.
        Route {
            name: "front-door",
            url: door_url,
            mode: "bearer",
            edges: &["front-door", "gateway"],
            workloads: &["get", "get-paced"],
        },
        // The VPC cell: the same paths, PostgreSQL and (for validate) auth-svc behind relays.
        Route { name: "direct", url: vpc.task.url(), mode: "identity", edges: &[], workloads: vpc_only },
        Route { name: "gateway", url: vpc.gateway.url(), mode: "bearer", edges: &["gateway-vpc"], workloads: vpc_only },
        Route {
            name: "haproxy-jwt",
            url: vpc.haproxy_jwt.url(),
            mode: "bearer",
            edges: &["haproxy-jwt-vpc"],
            workloads: vpc_only,
        },
        Route {
            name: "validate",
            url: vpc.validate_proxy.url(),
            mode: "bearer",
            edges: &["validate-vpc"],
            workloads: vpc_only,
        },
    ]);
    routes.retain(|r| o.wants_path(r.name));

    let mut cells = Vec::new();
    let mut network = None;
    eprintln!("==> task workloads ({} s per cell, {} connections)", o.duration.as_secs_f64(), o.connections);
    for workload in TASK_WORKLOADS {
        if !o.wants_workload(workload) {
            continue;
        }
        let visiting: Vec<&Route> = routes.iter().filter(|r| r.workloads.contains(&workload)).collect();
        if workload == "get-vpc" {
            vpc.pg_relay.holds.clear();
            vpc.auth_relay.holds.clear();
        }
        // Rounds, each visiting the paths in a rotated order, so that a burst of outside load
        // (the 2 cores are shared) lands on different paths; the median round is reported.
        let mut rounds: Vec<Vec<Cell>> = vec![Vec::new(); visiting.len()];
        for round in 0..o.rounds {
            for k in 0..visiting.len() {
                let i = (k + round) % visiting.len();
                let load = ctx.task_load(workload, visiting[i]);
                let (cell, _) = ctx.cell(workload, visiting[i], load, &[], o.warmup).await?;
                rounds[i].push(cell);
            }
        }
        cells.extend(rounds.into_iter().map(merge_rounds));
        if workload == "get-vpc" {
            let mut holds = vpc.pg_relay.holds.summary();
            let auth = vpc.auth_relay.holds.summary();
            // One figure for both relays: the larger percentiles, all chunks.
            holds.chunks += auth.chunks;
            holds.p50_ms = holds.p50_ms.max(auth.p50_ms);
            holds.p99_ms = holds.p99_ms.max(auth.p99_ms);
            holds.max_ms = holds.max_ms.max(auth.max_ms);
            network = Some(Network { delay_ms: vpc.delay.as_secs_f64() * 1000.0, holds, tokio_sleep_ms });
        }
    }

    let mut login = None;
    if o.wants_workload("login") {
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
        let auth_route = Route { name: "auth-svc", url: stack.auth.url(), mode: "bearer", edges: &[], workloads: &[] };
        eprintln!("==> login (HASH_CONCURRENCY default = {permits} permits)");
        let calib_secs = if o.quick { o.duration } else { o.duration.div_f64(2.0).max(Duration::from_secs(5)) };
        let (calib, calib_run) = ctx
            .cell("login-1", &auth_route, ctx.login_load(&auth_route.url, 1, calib_secs), &[401], Duration::ZERO)
            .await?;
        let measured_connections = (permits * 4) as u32;
        let (measured, measured_run) = ctx
            .cell(
                "login-n",
                &auth_route,
                ctx.login_load(&auth_route.url, measured_connections, o.duration),
                &[401, 503],
                Duration::ZERO,
            )
            .await?;
        let flood_secs =
            if o.quick { o.duration.max(Duration::from_secs(3)) } else { o.duration.max(Duration::from_secs(15)) };
        let (flood, flood_run) = ctx
            .cell(
                "login-flood",
                &auth_route,
                ctx.login_load(&auth_route.url, o.login_flood, flood_secs),
                &[401, 503],
                Duration::ZERO,
            )
            .await?;
        let completed = |r: &wrk::Run| -> f64 {
            let done: u64 = r.statuses.iter().filter(|(s, _)| *s == "200" || *s == "401").map(|(_, n)| n).sum();
            if r.duration_us == 0 { 0.0 } else { done as f64 * 1e6 / r.duration_us as f64 }
        };
        let time_per_hash_ms = calib_run.latency_us.mean / 1000.0;
        let theoretical_rps = if time_per_hash_ms > 0.0 { permits as f64 * 1000.0 / time_per_hash_ms } else { 0.0 };
        let measured_rps = completed(&measured_run);
        login = Some(Login {
            permits,
            time_per_hash_ms,
            theoretical_rps,
            measured_rps,
            measured_connections,
            ratio: if theoretical_rps > 0.0 { measured_rps / theoretical_rps } else { 0.0 },
            flood_connections: o.login_flood,
            flood_statuses: flood_run.statuses.clone(),
            flood_completed_rps: completed(&flood_run),
            auth_rss_mib_measured: measured.peak_rss_mib.get("auth-svc").copied().unwrap_or(0.0),
            auth_rss_mib_flood: flood.peak_rss_mib.get("auth-svc").copied().unwrap_or(0.0),
        });
        cells.extend([calib, measured, flood]);
    }

    // Steady-state pulls of the revoked gateway: bytes per pull while nothing changed.
    let pulls_now =
        metric(stack.revoked.gateway.metrics, "gateway_revocation_pulls_total", r#"outcome="success""#).await;
    let bytes_now = stack.revoked.relay.bytes.get().1;
    let steady_pulls = (pulls_now - pulls_seen).max(0.0) as u64;
    let empty_pull_bytes =
        if steady_pulls == 0 { f64::NAN } else { (bytes_now - full_bytes_seen) as f64 / steady_pulls as f64 };
    let extra_pulls = (pulls_seen - 1.0).max(0.0);
    let full_pull_bytes = full_bytes_seen.saturating_sub((extra_pulls * empty_pull_bytes.max(0.0)) as u64);
    let revocation_cost = RevocationCost {
        seeded: stack.revoked.seeded,
        live_in_gateway,
        full_pull_bytes,
        empty_pull_bytes,
        steady_pulls,
    };

    stack.stop();

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
    let targets = report::targets(&cells, &ready_ms, login.as_ref(), network.as_ref(), Some(&revocation_cost));

    let mode = if o.quick { "quick" } else { "full" };
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let settings = BTreeMap::from([
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
        ("extra_env", o.env.iter().map(|(p, k, v)| format!("{p}:{k}={v}")).collect::<Vec<_>>().join(" ")),
        (
            "loadavg",
            format!(
                "before {}, after {}",
                load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    ]);
    let results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        mode,
        bin_dir: bin_dir.display().to_string(),
        commit,
        machine: machine(),
        settings,
        ready_ms,
        cells,
        login,
        network,
        revocations: Some(revocation_cost),
        targets,
        problems,
        elapsed_s: started.elapsed().as_secs_f64(),
    };

    let markdown = report::markdown(&results);
    println!("{markdown}");
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| manifest_dir().join("results").join(if o.quick { "quick.json" } else { "latest.json" }));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    std::fs::write(out.with_extension("md"), &markdown)?;
    eprintln!("==> results: {} and {} ({:.0} s)", out.display(), out.with_extension("md").display(), results.elapsed_s);

    if !results.problems.is_empty() {
        bail!("the run is not valid (logs kept in {}):\n  {}", run_dir.display(), results.problems.join("\n  "));
    }
    if !o.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(())
}
