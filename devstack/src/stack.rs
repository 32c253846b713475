//! The whole system on 127.0.0.1, shaped like the ECS deployment: PostgreSQL (the RDS
//! stand-in), N auth-svc instances, N "tasks" of task-svc + its gateway sidecar, and the front
//! door (the ALB stand-in, plus the Cloud Map stand-in the gateways reach auth-svc through).
//!
//! The run command (scripts/run.sh: `cargo run --release --bin devstack`) and the e2e tests both start it through
//! [`Stack::start`], so what the tests exercise is what a user runs.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{Connection, Executor, PgConnection};

use front_door::{BackendStatus, FrontDoor, FrontDoorConfig, PoolKind};
use gateway::config::SidecarFile;

use crate::launch::{
    self, AuthSvcSettings, Binaries, Job, KeyringSource, Launch, ScrapeTarget, ServiceSettings, TaskSvcSettings,
    loopback,
};
use crate::logs::LogSink;
use crate::monitoring::PrometheusOptions;
use crate::postgres::{Cluster, Durability, free_port};
use crate::process::{Output, Process};

/// The database the local run uses inside its own cluster.
pub const DATABASE_NAME: &str = "taskmgmt";

/// What to start, and how. [`Options::new`] gives the run command's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// The front door (ALB stand-in) port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub auth_instances: usize,
    pub task_instances: usize,
    /// First of the internal ports, used consecutively (see [`Stack::start`]); `None` picks
    /// free ports.
    pub base_port: Option<u16>,
    /// PostgreSQL's port; `None` picks a free one.
    pub pg_port: Option<u16>,
    /// Keeps the cluster and the run's files here between runs; `None` uses a temporary
    /// directory that is removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// Use this server instead of starting a cluster (the services migrate it on start).
    pub database_url: Option<String>,
    /// Where the auth-svc, task-svc and gateway binaries are.
    pub bin_dir: PathBuf,
    /// The gateway's config file (the repository's `sidecar.toml`).
    pub sidecar_config: PathBuf,
    /// Overrides `[shutdown] grace_period_secs` of the sidecar config (in a copy in the run
    /// directory): pingora waits the whole grace on SIGTERM even when idle.
    pub gateway_grace_secs: Option<u64>,
    /// Overrides `[shutdown] graceful_shutdown_timeout_secs` likewise.
    pub gateway_shutdown_timeout_secs: Option<u64>,
    /// `SHUTDOWN_GRACE_SECS` for auth-svc and task-svc; `None` keeps their default (20 s).
    pub service_grace_secs: Option<u64>,
    pub front_door: FrontDoorConfig,
    /// The shared HS256 secret; `None` generates 32 random bytes (hex) for this run.
    pub jwt_secret: Option<String>,
    /// Where every auth-svc and gateway gets its keyring; `None` is `jwt_secret` (JWT_SECRET).
    /// Tests pass Secrets Manager on moto to rotate keys as on ECS.
    pub keyring: Option<KeyringSource>,
    /// `JWT_KEYRING_REFRESH_SECS` per auth-svc instance (index 0 is auth-1); instances beyond
    /// the list keep the default. Lets a test hold two instances on different keyrings.
    pub auth_keyring_refresh_secs: Vec<u64>,
    /// `table.key = value` changes to the gateways' config (schema-checked, e.g.
    /// `("revocation.poll_interval_secs", "1")`).
    pub sidecar_set: Vec<(String, String)>,
    pub logs: LogSink,
    /// How long each process may take to become healthy.
    pub ready_timeout: Duration,
    /// The local Prometheus scraping every process; `None` starts none (`--no-prometheus`).
    pub prometheus: Option<PrometheusOptions>,
}

impl Options {
    pub fn new(bin_dir: PathBuf) -> Self {
        Self {
            port: 8080,
            auth_instances: 2,
            task_instances: 2,
            base_port: None,
            pg_port: None,
            data_dir: None,
            database_url: None,
            bin_dir,
            sidecar_config: repo_root().join("sidecar.toml"),
            gateway_grace_secs: None,
            gateway_shutdown_timeout_secs: None,
            service_grace_secs: None,
            front_door: FrontDoorConfig::default(),
            jwt_secret: None,
            keyring: None,
            auth_keyring_refresh_secs: Vec::new(),
            sidecar_set: Vec::new(),
            logs: LogSink::stdout(),
            ready_timeout: Duration::from_secs(60),
            prometheus: Some(PrometheusOptions::default()),
        }
    }
}

/// The workspace root this crate was built from (where `sidecar.toml` and `Cargo.toml` are).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// 32 random bytes, hex: the run's JWT secret (the services refuse fewer than 32 bytes).
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The database of a run, as the banner names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `--data-dir`: a cluster kept in this directory, with PostgreSQL's durable defaults.
    DataDir(PathBuf),
    /// A temporary cluster tuned for speed (fsync off), removed on exit.
    Throwaway,
    /// `DATABASE_URL` / `--database-url`: a server this run does not manage.
    External,
}

impl Storage {
    /// One line for the banner and the log.
    pub fn describe(&self) -> String {
        match self {
            Storage::DataDir(dir) => {
                format!("durable: kept in {} with fsync, synchronous_commit and full_page_writes on", dir.display())
            }
            Storage::Throwaway => {
                "throwaway and fast: fsync off, removed on exit (use --data-dir to keep data safely)".to_owned()
            }
            Storage::External => "external: DATABASE_URL, durability as that server is configured".to_owned(),
        }
    }
}

/// A running child, for the run command's banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub name: String,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Its Prometheus endpoint (`/metrics`).
    pub metrics: SocketAddr,
}

/// One child process and how to start it again.
struct Child {
    launch: Launch,
    addr: SocketAddr,
    metrics: SocketAddr,
    process: Option<Process>,
}

impl Child {
    fn new(launch: Launch, addr: SocketAddr, metrics: SocketAddr, logs: &LogSink) -> Self {
        Self { launch: launch.output(Output::Prefixed(logs.clone())), addr, metrics, process: None }
    }

    fn name(&self) -> &str {
        &self.launch.name
    }

    fn spawn(&mut self, logs: &LogSink) -> Result<()> {
        let process = self.launch.spawn()?;
        logs.line("devstack", &format!("started {} (pid {}) on {}", self.name(), process.pid(), self.addr));
        self.process = Some(process);
        Ok(())
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let Some(process) = self.process.as_mut() else { bail!("{} is not running", self.launch.name) };
        self.launch.wait_ready(process, timeout).await
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }
}

/// One ECS task of the task service: task-svc and its gateway sidecar.
struct TaskPair {
    svc: Child,
    gateway: Child,
}

/// Internal ports: consecutive from `--base-port`, or free ones.
struct Ports {
    next: Option<u16>,
    used: HashSet<u16>,
}

impl Ports {
    fn take(&mut self, what: &str) -> Result<u16> {
        match self.next.as_mut() {
            Some(next) => {
                let port = *next;
                *next = next.checked_add(1).context("--base-port leaves too few ports below 65536")?;
                if StdListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                    bail!("127.0.0.1:{port} ({what}) is already in use; choose another --base-port");
                }
                Ok(port)
            }
            None => loop {
                // Ports picked one after another can repeat; the set keeps them distinct.
                let port = free_port()?;
                if self.used.insert(port) {
                    return Ok(port);
                }
            },
        }
    }
}

/// Removes a temporary run directory when dropped (last field of [`Stack`]).
struct RunDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

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
        if opts.auth_instances == 0 || opts.task_instances == 0 {
            bail!("at least one auth-svc instance and one task are needed");
        }
        let logs = opts.logs.clone();
        let binaries = Binaries::new(&opts.bin_dir);
        let (auth_bin, task_bin, gateway_bin) =
            (binaries.path("auth-svc")?, binaries.path("task-svc")?, binaries.path("gateway")?);
        if !opts.sidecar_config.exists() {
            bail!("gateway config {} not found (pass --sidecar-config)", opts.sidecar_config.display());
        }
        let mut sidecar = SidecarFile::read(&opts.sidecar_config).context("the gateway config (--sidecar-config)")?;
        if let Some(grace) = opts.gateway_grace_secs {
            sidecar.shutdown.grace_period_secs = grace;
        }
        if let Some(timeout) = opts.gateway_shutdown_timeout_secs {
            sidecar.shutdown.graceful_shutdown_timeout_secs = timeout;
        }
        for (key, value) in &opts.sidecar_set {
            sidecar.set(key, value).map_err(|e| anyhow::anyhow!("gateway config: {e}"))?;
        }

        // PostgreSQL's binaries, checked before anything starts: the message says how to
        // install them.
        if opts.database_url.is_none() {
            crate::postgres::bin_dir()?;
        }
        // Prometheus' binary and port likewise.
        let prometheus_at = match &opts.prometheus {
            Some(p) => Some((p.find_program()?, p.pick_addr()?)),
            None => None,
        };
        if let (Some(p), Some((_, addr))) = (&opts.prometheus, &prometheus_at)
            && let crate::monitoring::PrometheusPort::Preferred(port) = p.port
            && addr.port() != port
        {
            logs.line("devstack", &format!("127.0.0.1:{port} is taken (another Prometheus?): Prometheus uses {addr}"));
        }
        // The listeners first: a taken port should fail the run before anything is started.
        let public = front_door::bind(opts.port, "front door", "--port").await?;
        let mut ports = Ports { next: opts.base_port, used: HashSet::new() };
        let internal = front_door::bind(ports.take("auth discovery")?, "auth discovery", "--base-port").await?;
        let internal_port = internal.local_addr()?.port();
        ports.used.insert(internal_port);
        if let Ok(a) = public.local_addr() {
            ports.used.insert(a.port());
        }

        let run_dir = match &opts.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
                RunDir { path: std::fs::canonicalize(dir)?, remove: false }
            }
            None => {
                let path =
                    std::env::temp_dir().join(format!("devstack-{}-{}", std::process::id(), &generate_secret()[..8]));
                std::fs::create_dir_all(&path)?;
                RunDir { path, remove: true }
            }
        };
        let jwt_secret = opts.jwt_secret.clone().unwrap_or_else(generate_secret);

        let (database, database_url, storage) = match &opts.database_url {
            Some(url) => {
                logs.line("devstack", "using the database from DATABASE_URL / --database-url");
                (None, url.clone(), Storage::External)
            }
            None => {
                let port = match opts.pg_port {
                    Some(p) => {
                        if StdListener::bind((Ipv4Addr::LOCALHOST, p)).is_err() {
                            bail!("127.0.0.1:{p} (PostgreSQL) is already in use; choose another --pg-port");
                        }
                        p
                    }
                    None => ports.take("postgres")?,
                };
                ports.used.insert(port);
                // A kept data directory is a database worth keeping: PostgreSQL's durable
                // defaults (fsync, synchronous_commit, full_page_writes). The throwaway
                // cluster is removed on exit anyway, so it trades durability for speed.
                let (durability, storage) = match &opts.data_dir {
                    Some(_) => (Durability::Durable, Storage::DataDir(run_dir.path.join("postgres"))),
                    None => (Durability::Fast, Storage::Throwaway),
                };
                let dir = run_dir.path.join("postgres");
                logs.line(
                    "devstack",
                    &format!(
                        "starting PostgreSQL on 127.0.0.1:{port} ({}; data in {})",
                        storage.describe(),
                        dir.display()
                    ),
                );
                let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir, port, durability))
                    .await
                    .context("PostgreSQL start-up task")??;
                let url = cluster.url(DATABASE_NAME);
                create_database(&cluster.url("postgres"), DATABASE_NAME).await?;
                logs.line("devstack", &format!("PostgreSQL is up: {url} (log {})", cluster.log_file().display()));
                (Some(cluster), url, storage)
            }
        };

        let service = |listen: SocketAddr, metrics: SocketAddr| ServiceSettings {
            metrics: Some(metrics),
            shutdown_grace_secs: opts.service_grace_secs,
            ..ServiceSettings::new(database_url.clone(), listen)
        };
        let keyring = opts.keyring.clone().unwrap_or_else(|| KeyringSource::secret(&jwt_secret));

        let mut auth = Vec::new();
        for i in 1..=opts.auth_instances {
            let addr = loopback(ports.take(&format!("auth-{i}"))?);
            let metrics = loopback(ports.take(&format!("auth-{i} metrics"))?);
            let settings = AuthSvcSettings {
                keyring_refresh_secs: opts.auth_keyring_refresh_secs.get(i - 1).copied(),
                ..AuthSvcSettings::new(service(addr, metrics), keyring.clone())
            };
            let launch = settings.launch(&format!("auth-{i}"), &auth_bin);
            auth.push(Child::new(launch, addr, metrics, &logs));
        }
        // Like Cloud Map's name: one address the gateways re-resolve; behind it, the healthy
        // auth-svc instances. `localhost` keeps it a DNS name, as AUTH_SERVICE_URL is on ECS.
        let auth_url = format!("http://localhost:{internal_port}");
        let mut tasks = Vec::new();
        let mut gateway_stop = Duration::ZERO;
        for i in 1..=opts.task_instances {
            let svc_addr = loopback(ports.take(&format!("task-svc-{i}"))?);
            let svc_metrics = loopback(ports.take(&format!("task-svc-{i} metrics"))?);
            let gw_addr = loopback(ports.take(&format!("gateway-{i}"))?);
            let gw_metrics = loopback(ports.take(&format!("gateway-{i} metrics"))?);
            let launch =
                TaskSvcSettings::new(service(svc_addr, svc_metrics)).launch(&format!("task-svc-{i}"), &task_bin);
            let svc = Child::new(launch, svc_addr, svc_metrics, &logs);
            let gateway = launch::GatewaySettings {
                upstream_metrics: Some(svc_metrics),
                ..launch::GatewaySettings::new(
                    sidecar.clone(),
                    run_dir.path.join("sidecar.toml"),
                    gw_addr,
                    gw_metrics,
                    svc_addr,
                    auth_url.clone(),
                    keyring.clone(),
                )
            };
            gateway_stop = gateway.stop_timeout();
            let launch = gateway.launch(&format!("gateway-{i}"), &gateway_bin)?;
            tasks.push(TaskPair { svc, gateway: Child::new(launch, gw_addr, gw_metrics, &logs) });
        }

        // Services first (they migrate the database, advisory-locked, so starting them
        // together is safe), then each gateway once its task-svc answers: the task
        // definition's dependsOn HEALTHY.
        for child in auth.iter_mut().chain(tasks.iter_mut().map(|t| &mut t.svc)) {
            child.spawn(&logs)?;
        }
        for child in auth.iter_mut().chain(tasks.iter_mut().map(|t| &mut t.svc)) {
            child.wait_ready(opts.ready_timeout).await?;
        }
        for t in &mut tasks {
            t.gateway.spawn(&logs)?;
        }
        // The front door before the gateways are ready: it is also their way to auth-svc (the
        // Cloud Map stand-in), and a gateway is ready only once it has pulled the revocation
        // list from there. Its health checks take each task into rotation when it answers.
        let mut targets: Vec<(String, SocketAddr, PoolKind)> = Vec::new();
        for a in &auth {
            targets.push((a.name().to_owned(), a.addr, PoolKind::Auth));
        }
        for (i, t) in tasks.iter().enumerate() {
            targets.push((format!("task-{}", i + 1), t.gateway.addr, PoolKind::Tasks));
        }
        let front_door = FrontDoor::start(public, internal, targets, opts.front_door.clone())?;
        for t in &mut tasks {
            t.gateway.wait_ready(opts.ready_timeout).await?;
        }
        let prometheus = match (&opts.prometheus, prometheus_at) {
            (Some(p), Some((program, listen))) => {
                let launch =
                    p.settings(program, listen, &run_dir.path, scrape_targets(&auth, &tasks))?.launch("prometheus")?;
                let mut child = Child::new(launch, listen, listen, &logs);
                child.spawn(&logs)?;
                child.wait_ready(opts.ready_timeout).await?;
                Some(child)
            }
            _ => None,
        };
        let slack = Duration::from_secs(5);
        let stack = Self {
            prometheus,
            front_door,
            tasks,
            auth,
            database,
            database_url,
            storage,
            jwt_secret,
            logs,
            gateway_grace_secs: sidecar.shutdown.grace_period_secs,
            gateway_stop_wait: gateway_stop + slack,
            service_stop_wait: Duration::from_secs(opts.service_grace_secs.unwrap_or(20)) + slack,
            run_dir,
        };
        let deadline = opts.ready_timeout;
        let start = Instant::now();
        while stack.backends().iter().any(|b| !b.healthy) {
            if start.elapsed() > deadline {
                let down: Vec<String> = stack.backends().into_iter().filter(|b| !b.healthy).map(|b| b.name).collect();
                bail!("front door targets still unhealthy after {deadline:?}: {}", down.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(stack)
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

    /// Kills auth-svc instance `i` (SIGKILL, like a crashed task).
    pub fn kill_auth(&mut self, i: usize) {
        self.logs.line("devstack", &format!("killing {}", self.auth[i].name()));
        self.auth[i].kill();
    }

    /// Starts auth-svc instance `i` again on the same ports and waits until it answers.
    pub async fn restart_auth(&mut self, i: usize) -> Result<()> {
        let child = &mut self.auth[i];
        child.kill();
        child.spawn(&self.logs)?;
        child.wait_ready(Duration::from_secs(60)).await
    }

    /// Kills task `i`'s task-svc; its gateway keeps running (and answers 502 for it).
    pub fn kill_task_svc(&mut self, i: usize) {
        self.logs.line("devstack", &format!("killing {}", self.tasks[i].svc.name()));
        self.tasks[i].svc.kill();
    }

    /// Starts task `i`'s task-svc again on the same ports and waits until it answers.
    pub async fn restart_task_svc(&mut self, i: usize) -> Result<()> {
        let child = &mut self.tasks[i].svc;
        child.kill();
        child.spawn(&self.logs)?;
        child.wait_ready(Duration::from_secs(60)).await
    }

    /// Waits until the front door sees target `name` (e.g. `task-1`) as `healthy`.
    pub async fn wait_for_target(&self, name: &str, healthy: bool, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let Some(b) = self.backends().into_iter().find(|b| b.name == name) else {
                bail!("no front door target named {name}");
            };
            if b.healthy == healthy {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{name} is not {} after {timeout:?}", if healthy { "healthy" } else { "unhealthy" });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Children that have exited since the last call (for the run command to report).
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        let mut out = Vec::new();
        let children = self.auth.iter_mut().chain(self.tasks.iter_mut().flat_map(|t| [&mut t.svc, &mut t.gateway]));
        for c in children.chain(self.prometheus.as_mut()) {
            if let Some(status) = c.process.as_mut().and_then(Process::try_status) {
                out.push((c.name().to_owned(), status));
                c.process = None;
            }
        }
        out
    }

    /// Stops everything in order, as ECS and the ALB would: Prometheus (the observer first),
    /// then the front door stops taking requests and drains, then the gateways (SIGTERM, their
    /// configured grace), then the Cloud Map stand-in, then the services, then PostgreSQL;
    /// finally the temporary directory goes. Returns an error naming whatever had to be killed.
    pub async fn shutdown(mut self) -> Result<()> {
        let logs = self.logs.clone();
        let start = Instant::now();
        let mut problems = Vec::new();
        if let Some(prometheus) = self.prometheus.as_mut().and_then(|p| p.process.take()) {
            logs.line("devstack", "stopping Prometheus (SIGTERM)");
            problems.extend(stop_all(vec![prometheus], Duration::from_secs(10), &logs).await);
        }
        logs.line("devstack", "stopping the front door (draining in-flight requests)");
        self.front_door.stop_public().await;

        let gateways: Vec<Process> = self.tasks.iter_mut().filter_map(|t| t.gateway.process.take()).collect();
        if !gateways.is_empty() {
            // pingora sleeps through its whole grace period even when idle: say so, or the
            // pause looks like a hang.
            logs.line(
                "devstack",
                &format!(
                    "stopping the gateways (SIGTERM; pingora waits its full {} s grace period, \
                     sidecar.toml [shutdown] or --gateway-grace)",
                    self.gateway_grace_secs
                ),
            );
        }
        problems.extend(stop_all(gateways, self.gateway_stop_wait, &logs).await);
        self.front_door.stop_internal().await;

        let services: Vec<Process> = self
            .auth
            .iter_mut()
            .chain(self.tasks.iter_mut().map(|t| &mut t.svc))
            .filter_map(|c| c.process.take())
            .collect();
        logs.line("devstack", "stopping auth-svc and task-svc (SIGTERM)");
        problems.extend(stop_all(services, self.service_stop_wait, &logs).await);

        if let Some(cluster) = self.database.take() {
            logs.line("devstack", "stopping PostgreSQL");
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("PostgreSQL: {e:#}")),
                Err(e) => problems.push(format!("PostgreSQL: {e}")),
            }
        }
        if self.run_dir.remove {
            logs.line("devstack", &format!("removing {}", self.run_dir.path.display()));
        } else {
            logs.line("devstack", &format!("kept {}", self.run_dir.path.display()));
        }
        logs.line("devstack", &format!("stopped in {:.1} s", start.elapsed().as_secs_f64()));
        drop(self);
        if problems.is_empty() { Ok(()) } else { bail!("{}", problems.join("; ")) }
    }
}

/// One scrape target per process, with the jobs of `ecs/prometheus/prometheus.yml`: each
/// auth-svc's metrics port; each gateway's, twice (its own `/metrics`, and task-svc's passed
/// through at `/metrics/task-svc`, as on ECS). `task_id` is the task's name (`task-1`, `auth-2`).
fn scrape_targets(auth: &[Child], tasks: &[TaskPair]) -> Vec<ScrapeTarget> {
    let mut targets = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let task_id = format!("task-{}", i + 1);
        for job in [Job::Gateway, Job::TaskSvc] {
            targets.push(ScrapeTarget { job, addr: t.gateway.metrics, task_id: task_id.clone() });
        }
    }
    for a in auth {
        targets.push(ScrapeTarget { job: Job::AuthSvc, addr: a.metrics, task_id: a.name().to_owned() });
    }
    targets
}

/// SIGTERM to all at once, then waits for each (SIGKILL after `wait`); returns what went wrong.
async fn stop_all(processes: Vec<Process>, wait: Duration, logs: &LogSink) -> Vec<String> {
    let handles: Vec<_> = processes
        .into_iter()
        .map(|mut p| {
            // SIGTERM to all of them before waiting for any, so they drain in parallel.
            let sent = p.terminate();
            tokio::task::spawn_blocking(move || {
                let result = match sent {
                    // `kill` fails only if the process is already gone.
                    Err(_) => Ok(p.try_status()),
                    Ok(()) => p.wait_timeout(wait).inspect(|status| {
                        if status.is_none() {
                            p.kill();
                        }
                    }),
                };
                (p.name.clone(), result)
            })
        })
        .collect();
    let mut problems = Vec::new();
    for h in handles {
        match h.await {
            Ok((name, Ok(Some(status)))) => {
                logs.line("devstack", &format!("{name} exited ({status})"));
                // 143 = killed by our SIGTERM before it installed its handler: still stopped.
                if !status.success() && status.code() != Some(143) {
                    problems.push(format!("{name} exited with {status}"));
                }
            }
            Ok((name, Ok(None))) => problems.push(format!("{name} did not stop within {wait:?} and was killed")),
            Ok((name, Err(e))) => problems.push(format!("{name}: {e:#}")),
            Err(e) => problems.push(format!("stop task: {e}")),
        }
    }
    problems
}

/// Creates `name` in the cluster unless it exists (a kept data directory already has it).
async fn create_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await.context("could not connect to the new PostgreSQL")?;
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1").bind(name).fetch_optional(&mut conn).await?;
    if exists.is_none() {
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    }
    Ok(())
}
