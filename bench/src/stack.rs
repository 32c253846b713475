//! The system under test on loopback: a throwaway PostgreSQL cluster (devstack), auth-svc,
//! task-svc, two gateways (token cache on and off) and the per-request validation proxy, each
//! a real process whose start-to-ready time is measured.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use devstack::launch::{
    self, AuthSvc, Binaries, KeyringSource, Launch, Logging, Probe, ServiceSettings, TaskSvc, Throttles, loopback,
};
use devstack::postgres::{Cluster, Durability, free_port};
use devstack::process::{Output, Process};
use gateway::config::SidecarFile;
use sqlx::{Connection, Executor, PgConnection};

pub const JWT_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const DATABASE: &str = "taskmgmt";

/// One running process of the system.
pub struct Service {
    pub name: &'static str,
    pub process: Process,
    /// Where its traffic goes.
    pub addr: SocketAddr,
    /// Its Prometheus port, when it has one.
    pub metrics: Option<SocketAddr>,
    /// Spawn to first 200 from its health endpoint.
    pub ready: Duration,
}

impl Service {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

pub struct Stack {
    pub cluster: Cluster,
    pub database_url: String,
    pub auth: Service,
    pub task: Service,
    pub gateway: Service,
    pub gateway_nocache: Service,
    pub validate_proxy: Service,
    pub front_door: Service,
}

/// Starts `launch` with its output in `logs/<name>.log` and measures spawn to ready, polling
/// every 2 ms.
async fn start_timed(launch: Launch, logs: &Path) -> Result<(Process, Duration)> {
    if !launch.program.exists() {
        bail!("{} not found (build it first, or point --bin-dir at the right directory)", launch.program.display());
    }
    let log = logs.join(format!("{}.log", launch.name));
    let launch = launch.output(Output::File(log)).poll_every(Duration::from_millis(2));
    let start = Instant::now();
    let process = launch.start(Duration::from_secs(60)).await?;
    Ok((process, start.elapsed()))
}

/// The bench's processes log JSON lines, as on ECS (task definitions set LOG_FORMAT=json;
/// RUST_LOG is left at its default), and stop within 2 s.
fn service(database_url: &str) -> Result<ServiceSettings> {
    Ok(ServiceSettings {
        metrics: Some(loopback(free_port()?)),
        shutdown_grace_secs: Some(2),
        ..ServiceSettings::new(database_url, loopback(free_port()?))
    })
}

pub struct StartOptions<'a> {
    pub bin_dir: &'a Path,
    pub self_exe: &'a Path,
    pub run_dir: &'a Path,
    pub sidecar: &'a Path,
    pub durability: Durability,
    /// Extra environment per process name.
    pub extra_env: &'a [(String, String, String)],
    pub sidecar_set: &'a [(String, String)],
}

/// `--env PROC:KEY=VALUE` for the process named `name`.
fn extra(o: &StartOptions<'_>, name: &str, mut launch: Launch) -> Launch {
    for (process, k, v) in o.extra_env {
        if process == name {
            launch = launch.env(k, v);
        }
    }
    launch
}

pub async fn start(o: &StartOptions<'_>) -> Result<Stack> {
    let logs = o.run_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let pg_dir = o.run_dir.join("pg");
    let pg_port = free_port()?;
    let (cluster, durability) = (pg_dir.clone(), o.durability);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster, pg_port, durability)).await??;
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
    admin.execute(format!("CREATE DATABASE {DATABASE}").as_str()).await?;
    admin.close().await?;
    let database_url = cluster.url(DATABASE);
    // Migrate first: the start-to-ready times are those of a restart against a ready database.
    let pool = sqlx::PgPool::connect(&database_url).await?;
    platform::db::MIGRATOR.run(&pool).await?;
    pool.close().await;

    let mut sidecar = SidecarFile::read(o.sidecar)?;
    for (key, value) in o.sidecar_set {
        sidecar.set(key, value).map_err(|e| anyhow::anyhow!("--sidecar-set {e}"))?;
    }
    let keyring = KeyringSource::secret(JWT_SECRET);
    let binaries = Binaries::new(o.bin_dir);

    // The login cells measure hashing capacity from one machine, which the per-client limit
    // would answer with 429s; the per-account count stays in the measured path (one upsert per
    // login) with a limit the seeded users never reach.
    let settings = AuthSvc {
        logging: Logging::json(),
        throttles: Throttles::off(),
        ..AuthSvc::new(service(&database_url)?, keyring.clone())
    };
    let launch = extra(o, "auth-svc", settings.launch("auth-svc", &binaries.dir.join("auth-svc")));
    let (process, ready) = start_timed(launch, &logs).await?;
    let auth =
        Service { name: "auth-svc", process, addr: settings.service.listen, metrics: settings.service.metrics, ready };

    let settings = TaskSvc { logging: Logging::json(), ..TaskSvc::new(service(&database_url)?) };
    let launch = extra(o, "task-svc", settings.launch("task-svc", &binaries.dir.join("task-svc")));
    let (process, ready) = start_timed(launch, &logs).await?;
    let task =
        Service { name: "task-svc", process, addr: settings.service.listen, metrics: settings.service.metrics, ready };

    let gateway = start_gateway("gateway", true, o, &sidecar, &keyring, &logs, &auth, &task).await?;
    let gateway_nocache = start_gateway("gateway-nocache", false, o, &sidecar, &keyring, &logs, &auth, &task).await?;

    let proxy = loopback(free_port()?);
    let launch = Launch::new("validate-proxy", o.self_exe)
        .args(["validate-proxy", "--listen", &proxy.to_string(), "--auth", &auth.url(), "--upstream", &task.url()])
        .ready(vec![Probe::http(proxy, "/tasks/health")]);
    let (process, ready) = start_timed(launch, &logs).await?;
    let validate_proxy = Service { name: "validate-proxy", process, addr: proxy, metrics: None, ready };

    // The ALB stand-in in front of the (cached) gateway. Its targets start unhealthy, as new ALB
    // targets do, so its ready time includes two health-check intervals.
    let door = loopback(free_port()?);
    let launch = Launch::new("front-door", o.self_exe)
        .args(["front-door", "--listen", &door.to_string()])
        .args(["--gateway", &gateway.addr.to_string(), "--auth", &auth.addr.to_string()])
        .ready(vec![Probe::http(door, "/tasks/health"), Probe::http(door, "/auth/health")]);
    let (process, ready) = start_timed(launch, &logs).await?;
    let front_door = Service { name: "front-door", process, addr: door, metrics: None, ready };

    Ok(Stack { cluster, database_url, auth, task, gateway, gateway_nocache, validate_proxy, front_door })
}

#[allow(clippy::too_many_arguments)]
async fn start_gateway(
    name: &'static str,
    cache: bool,
    o: &StartOptions<'_>,
    sidecar: &SidecarFile,
    keyring: &KeyringSource,
    logs: &Path,
    auth: &Service,
    task: &Service,
) -> Result<Service> {
    let mut sidecar = sidecar.clone();
    sidecar.cache.enabled = cache;
    let listen = loopback(free_port()?);
    let metrics = loopback(free_port()?);
    let settings = launch::Gateway {
        logging: Logging::json(),
        upstream_metrics: task.metrics,
        ..launch::Gateway::new(
            sidecar,
            o.run_dir.join(format!("{name}.toml")),
            listen,
            metrics,
            task.addr,
            auth.url(),
            keyring.clone(),
        )
    };
    // Ready: the keyring is loaded (/ready) and a request goes through to task-svc.
    let launch = extra(o, name, settings.launch(name, &o.bin_dir.join("gateway"))?);
    let (process, ready) = start_timed(launch, logs).await?;
    Ok(Service { name, process, addr: listen, metrics: Some(metrics), ready })
}

impl Stack {
    /// Every process of the system and of the harness, in start order.
    pub fn services(&self) -> [&Service; 6] {
        [&self.auth, &self.task, &self.gateway, &self.gateway_nocache, &self.validate_proxy, &self.front_door]
    }

    /// Stops every process (SIGTERM, short grace) and the cluster.
    pub fn stop(mut self) {
        for s in [
            &mut self.front_door,
            &mut self.validate_proxy,
            &mut self.gateway_nocache,
            &mut self.gateway,
            &mut self.task,
            &mut self.auth,
        ] {
            let _ = s.process.stop(Duration::from_secs(5));
        }
        let _ = self.cluster.stop();
    }

    /// The postmaster's pid (first line of postmaster.pid).
    pub fn postgres_pid(&self, run_dir: &Path) -> Option<u32> {
        std::fs::read_to_string(run_dir.join("pg/data/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }
}
