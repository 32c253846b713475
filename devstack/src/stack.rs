//! The whole system on 127.0.0.1, shaped like the ECS deployment: PostgreSQL (the RDS
//! stand-in), N auth-svc instances, N "tasks" of task-svc + its gateway sidecar, and the front
//! door (the ALB stand-in, plus the Cloud Map stand-in the gateways reach auth-svc through).
//!
//! The run command (scripts/run.sh: `cargo run --release --bin devstack`) and the e2e tests both start it through
//! [`Stack::start`], so what the tests exercise is what a user runs.
//!
//! One file per job: [`Options`] (what to start), `prepare` (checks and listeners before
//! anything starts), `database`, `processes` (the settings and start order of the system's
//! processes), `control` (kill, restart, wait for a target), `shutdown`.

mod child;
mod control;
mod database;
mod options;
mod prepare;
mod processes;
mod shutdown;
mod signing;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use front_door::{BackendStatus, FrontDoor};

use crate::launch::loopback;
use crate::logs::LogSink;
use crate::postgres::Cluster;
use child::{Child, Ports, RunDir, TaskPair};
pub use database::DATABASE_NAME;
pub use options::{Options, ProcessInfo, Storage, generate_secret, repo_root};
use prepare::Listeners;
use processes::Plan;

/// The running system. Dropping it kills everything at once; [`Stack::shutdown`] stops it in
/// order, the way a user's Ctrl-C does.
pub struct Stack {
    /// Stopped first: the observer goes before what it observes, so a stopping stack is not
    /// recorded as an outage.
    prometheus: Option<Child>,
    front_door: FrontDoor,
    tasks: Vec<TaskPair>,
    auth: Vec<Child>,
    database: Option<Cluster>,
    database_url: String,
    storage: Storage,
    jwt_secret: String,
    jwt_alg: platform::keyring::Alg,
    logs: LogSink,
    gateway_grace_secs: u64,
    gateway_stop_wait: Duration,
    service_stop_wait: Duration,
    run_dir: RunDir,
}

impl Stack {
    /// Starts everything and returns once every front door target passes its health checks.
    ///
    /// With `base_port = B` the internal ports are: B the Cloud Map stand-in, then PostgreSQL
    /// (when started here and `pg_port` is not set), then per auth-svc instance its port and
    /// metrics port, then per task the task-svc port, its metrics port,
    /// the gateway port and the gateway's metrics port.
    pub async fn start(opts: Options) -> Result<Self> {
        let logs = opts.logs.clone();
        let prerequisites = prepare::check(&opts, &logs)?;
        let mut ports = Ports::new(opts.base_port);
        let listeners = Listeners::bind(&opts, &mut ports).await?;
        let run_dir = RunDir::create(opts.data_dir.as_deref())?;
        let jwt_secret = opts.jwt_secret.clone().unwrap_or_else(generate_secret);

        let (auth_keyring, gateway_keyring) = signing::keyrings(&opts, &jwt_secret)?;
        let jwt_alg = signing::mode(&auth_keyring);

        let database = database::start(&opts, &mut ports, &run_dir, &logs).await?;

        let plan = Plan {
            opts: &opts,
            prerequisites: &prerequisites,
            database_url: &database.url,
            keyring: auth_keyring,
            gateway_keyring,
            run_dir: &run_dir.path,
            logs: &logs,
        };
        let mut auth = plan.auth_instances(&mut ports)?;
        // Like Cloud Map's name: one address the gateways re-resolve; behind it, the healthy
        // auth-svc instances. `localhost` keeps it a DNS name, as AUTH_SERVICE_URL is on ECS.
        let auth_url = format!("http://localhost:{}", listeners.internal_port()?);
        let (mut tasks, gateway_stop) = plan.task_pairs(&mut ports, &auth_url)?;

        processes::start_services(&mut auth, &mut tasks, &logs, opts.ready_timeout).await?;
        processes::spawn_gateways(&mut tasks, &logs)?;
        let front_door = processes::start_front_door(listeners, &auth, &tasks, &opts.front_door)?;
        processes::wait_gateways_ready(&mut tasks, opts.ready_timeout).await?;
        let prometheus = processes::start_prometheus(&plan, &auth, &tasks).await?;

        let slack = Duration::from_secs(5);
        let stack = Self {
            prometheus,
            front_door,
            tasks,
            auth,
            database: database.cluster,
            database_url: database.url,
            storage: database.storage,
            jwt_secret,
            jwt_alg,
            logs,
            gateway_grace_secs: prerequisites.sidecar.shutdown.grace_period_secs,
            gateway_stop_wait: gateway_stop + slack,
            service_stop_wait: Duration::from_secs(opts.service_grace_secs.unwrap_or(20)) + slack,
            run_dir,
        };
        stack.wait_all_targets_healthy(opts.ready_timeout).await?;
        Ok(stack)
    }

    /// Waits until the front door sees every target healthy.
    async fn wait_all_targets_healthy(&self, deadline: Duration) -> Result<()> {
        let start = Instant::now();
        while self.backends().iter().any(|b| !b.healthy) {
            if start.elapsed() > deadline {
                let down: Vec<String> = self.backends().into_iter().filter(|b| !b.healthy).map(|b| b.name).collect();
                bail!("front door targets still unhealthy after {deadline:?}: {}", down.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The local Prometheus' UI and API, e.g. `http://127.0.0.1:9090`; `None` when off.
    pub fn prometheus_url(&self) -> Option<String> {
        self.prometheus.as_ref().map(|p| format!("http://{}", p.addr))
    }

    /// The front door's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.front_door_addr())
    }

    pub fn front_door_addr(&self) -> SocketAddr {
        self.front_door.public_addr().unwrap_or_else(|| loopback(0))
    }

    /// What the gateways have as AUTH_SERVICE_URL (the Cloud Map stand-in).
    pub fn auth_discovery_url(&self) -> String {
        format!("http://localhost:{}", self.front_door.internal_addr().map_or(0, |a| a.port()))
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Which database this run uses, and how safe its data is.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// How tokens are signed in this run (`--jwt-alg`, or the mode of `Options::keyring`).
    pub fn jwt_alg(&self) -> platform::keyring::Alg {
        self.jwt_alg
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir.path
    }

    /// The front door's view of its targets: health and per-target request counts.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.front_door.backends()
    }

    pub fn auth_count(&self) -> usize {
        self.auth.len()
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// auth-svc instance `i` (0-based): its address and metrics address.
    pub fn auth_addrs(&self, i: usize) -> (SocketAddr, SocketAddr) {
        (self.auth[i].addr, self.auth[i].metrics)
    }

    /// Task `i`'s gateway: its address and metrics address.
    pub fn gateway_addrs(&self, i: usize) -> (SocketAddr, SocketAddr) {
        (self.tasks[i].gateway.addr, self.tasks[i].gateway.metrics)
    }

    /// Task `i`'s task-svc: its address and metrics address.
    pub fn task_svc_addrs(&self, i: usize) -> (SocketAddr, SocketAddr) {
        (self.tasks[i].svc.addr, self.tasks[i].svc.metrics)
    }

    /// Every running child.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.auth
            .iter()
            .chain(self.tasks.iter().flat_map(|t| [&t.svc, &t.gateway]))
            .filter_map(|c| {
                c.process.as_ref().map(|p| ProcessInfo {
                    name: c.name().to_owned(),
                    pid: p.pid(),
                    addr: c.addr,
                    metrics: c.metrics,
                })
            })
            .collect()
    }
}
