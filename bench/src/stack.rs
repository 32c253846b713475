//! The system under test on loopback: a throwaway PostgreSQL cluster (devstack), auth-svc,
//! task-svc, the gateways (over task-svc's Unix socket and over TCP, without the token cache,
//! an older build when given, one with many live revocations), HAProxy with and without a JWT
//! check, the per-request validation proxy and the front door; and the same paths again where
//! delay relays make the network look like a VPC. Each is a real process whose start-to-ready
//! time is measured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use devstack::launch::{
    self, AuthSvcSettings, Binaries, KeyringSource, Launch, Logging, Probe, RunningService, ServiceSettings,
    TaskSvcSettings, Throttles, loopback,
};
use devstack::postgres::{Cluster, Durability, free_port};
use devstack::process::{Output, Process};
use gateway::config::SidecarFile;
use platform::Secret;
use sqlx::{Connection, Executor, PgConnection};

use crate::haproxy::{Haproxy, JwtCheck, Upstream};
use crate::relay::{DelayLine, Relay};
use crate::revocations;

pub const JWT_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const DATABASE: &str = "taskmgmt";

/// The system under test: every process the bench measures, and the cluster.
pub struct BenchStack {
    pub cluster: Cluster,
    pub database_url: String,
    pub auth: RunningService,
    pub task: RunningService,
    /// The gateway as configured by the repository's sidecar.toml (TCP unless `--upstream unix`).
    pub gateway: RunningService,
    /// The same gateway forwarding over task-svc's Unix socket (the same-run comparison).
    pub gateway_uds: RunningService,
    pub gateway_nocache: RunningService,
    /// The `--baseline-bin` gateway (another build), over TCP: before/after in one run.
    pub gateway_before: Option<RunningService>,
    pub haproxy: RunningService,
    pub haproxy_jwt: RunningService,
    pub validate_proxy: RunningService,
    pub front_door: RunningService,
    pub revoked: Revoked,
    pub vpc: Vpc,
}

/// A gateway whose auth-svc holds many live revocations (its own database), reached through a
/// relay that counts the bytes of every pull.
pub struct Revoked {
    pub auth: RunningService,
    pub gateway: RunningService,
    pub relay: Relay,
    /// Live revocations seeded.
    pub seeded: u64,
}

/// The same paths where the network looks like a VPC: task-svc and auth-svc reach PostgreSQL
/// through a delay relay, and the validation proxy reaches auth-svc through another.
pub struct Vpc {
    pub delay: Duration,
    pub pg_relay: Relay,
    pub auth_relay: Relay,
    pub auth: RunningService,
    pub task: RunningService,
    pub gateway: RunningService,
    pub validate_proxy: RunningService,
    pub haproxy_jwt: RunningService,
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
    /// A directory with another build's `gateway` (the "before" of a change).
    pub baseline_bin: Option<&'a Path>,
    pub haproxy: &'a Path,
    /// Live revocations for the revoked gateway's auth-svc.
    pub revocations: u32,
    /// One-way delay of the VPC relays.
    pub vpc_delay: Duration,
    /// The gateways and HAProxy peers reach task-svc over its Unix socket (else TCP).
    pub unix_upstream: bool,
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

/// A database of the cluster, created and migrated.
async fn database(cluster: &Cluster, name: &str) -> Result<String> {
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    admin.close().await?;
    let url = cluster.url(name);
    let pool = sqlx::PgPool::connect(&url).await?;
    platform::db::MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(url)
}

/// `url` with its port replaced (to go through a relay).
fn via(url: &str, from: u16, to: u16) -> String {
    url.replacen(&format!(":{from}/"), &format!(":{to}/"), 1)
}

/// The bench's processes (all but HAProxy) with everything they share.
struct Starter<'a> {
    o: &'a StartOptions<'a>,
    logs: PathBuf,
    sidecar: SidecarFile,
    keyring: KeyringSource,
    binaries: Binaries,
}

impl Starter<'_> {
    async fn auth(&self, name: &'static str, database_url: &str) -> Result<RunningService> {
        // The login cells measure hashing capacity from one machine, which the per-client limit
        // would answer with 429s; the per-account count stays in the measured path (one upsert
        // per login) with a limit the seeded users never reach.
        let settings = AuthSvcSettings {
            logging: Logging::json(),
            throttles: Throttles::off(),
            ..AuthSvcSettings::new(service(database_url)?, self.keyring.clone())
        };
        let launch = extra(self.o, name, settings.launch(name, &self.binaries.dir.join("auth-svc")));
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: settings.service.listen, metrics: settings.service.metrics, ready })
    }

    async fn task(&self, name: &'static str, database_url: &str, socket: &Path) -> Result<RunningService> {
        let settings = TaskSvcSettings {
            logging: Logging::json(),
            unix_socket: Some(socket.to_path_buf()),
            ..TaskSvcSettings::new(service(database_url)?)
        };
        let launch = extra(self.o, name, settings.launch(name, &self.binaries.dir.join("task-svc")));
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: settings.service.listen, metrics: settings.service.metrics, ready })
    }

    /// A gateway in front of `task`: over its Unix socket when `socket` is given, else TCP.
    async fn gateway(
        &self,
        name: &'static str,
        program: &Path,
        task: &RunningService,
        socket: Option<&Path>,
        auth_url: &str,
        edit: impl FnOnce(&mut SidecarFile),
    ) -> Result<RunningService> {
        let mut sidecar = self.sidecar.clone();
        sidecar.upstream.socket = socket.map(|p| p.display().to_string()).unwrap_or_default();
        edit(&mut sidecar);
        let listen = loopback(free_port()?);
        let metrics = loopback(free_port()?);
        let settings = launch::GatewaySettings {
            logging: Logging::json(),
            upstream_metrics: task.metrics,
            ..launch::GatewaySettings::new(
                sidecar,
                self.o.run_dir.join(format!("{name}.toml")),
                listen,
                metrics,
                task.addr,
                auth_url,
                self.keyring.clone(),
            )
        };
        // Ready: the keyring is loaded (/ready) and a request goes through to task-svc.
        let launch = extra(self.o, name, settings.launch(name, program)?);
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: listen, metrics: Some(metrics), ready })
    }

    async fn validate_proxy(
        &self,
        name: &'static str,
        auth_url: &str,
        task: &RunningService,
    ) -> Result<RunningService> {
        let proxy = loopback(free_port()?);
        let launch = Launch::new(name, self.o.self_exe)
            .args(["validate-proxy", "--listen", &proxy.to_string(), "--auth", auth_url, "--upstream", &task.url()])
            .ready(vec![Probe::http(proxy, "/tasks/health")]);
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: proxy, metrics: None, ready })
    }

    /// HAProxy in front of `task`, over its Unix socket when `socket` is given, else TCP.
    async fn haproxy(
        &self,
        name: &'static str,
        task: &RunningService,
        socket: Option<&Path>,
        jwt: bool,
    ) -> Result<RunningService> {
        let listen = loopback(free_port()?);
        let settings = Haproxy {
            listen,
            upstream: socket.map_or(Upstream::Tcp(task.addr), |p| Upstream::Unix(p.to_path_buf())),
            jwt: jwt.then(|| JwtCheck { secret: Secret::new(JWT_SECRET) }),
            public_routes: self.sidecar.routes.public.clone(),
            threads: if self.sidecar.server.threads == 0 {
                std::thread::available_parallelism().map_or(1, usize::from)
            } else {
                self.sidecar.server.threads
            },
        };
        let launch = settings.launch(name, self.o.haproxy, &self.o.run_dir.join(format!("{name}.cfg")))?;
        let (process, ready) = start_timed(extra(self.o, name, launch), &self.logs).await?;
        Ok(RunningService { name, process, addr: listen, metrics: None, ready })
    }
}

pub async fn start(o: &StartOptions<'_>) -> Result<BenchStack> {
    let logs = o.run_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let pg_dir = o.run_dir.join("pg");
    let pg_port = free_port()?;
    let (cluster, durability) = (pg_dir.clone(), o.durability);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster, pg_port, durability)).await??;
    // Migrate first: the start-to-ready times are those of a restart against a ready database.
    let database_url = database(&cluster, DATABASE).await?;

    let mut sidecar = SidecarFile::read(o.sidecar)?;
    for (key, value) in o.sidecar_set {
        sidecar.set(key, value).map_err(|e| anyhow::anyhow!("--sidecar-set {e}"))?;
    }
    let st =
        Starter { o, logs, sidecar, keyring: KeyringSource::secret(JWT_SECRET), binaries: Binaries::new(o.bin_dir) };
    let gateway_bin = o.bin_dir.join("gateway");

    let auth = st.auth("auth-svc", &database_url).await?;
    let task_socket = o.run_dir.join("task-svc.sock");
    let task = st.task("task-svc", &database_url, &task_socket).await?;
    let auth_url = auth.url();
    let sock = o.unix_upstream.then_some(task_socket.as_path());
    let gateway = st.gateway("gateway", &gateway_bin, &task, sock, &auth_url, |_| {}).await?;
    let gateway_uds =
        st.gateway("gateway-uds", &gateway_bin, &task, Some(task_socket.as_path()), &auth_url, |_| {}).await?;
    let gateway_nocache =
        st.gateway("gateway-nocache", &gateway_bin, &task, sock, &auth_url, |s| s.cache.enabled = false).await?;
    let gateway_before = match o.baseline_bin {
        Some(dir) => Some(st.gateway("gateway-before", &dir.join("gateway"), &task, None, &auth_url, |_| {}).await?),
        None => None,
    };
    let haproxy = st.haproxy("haproxy", &task, sock, false).await?;
    let haproxy_jwt = st.haproxy("haproxy-jwt", &task, sock, true).await?;
    let validate_proxy = st.validate_proxy("validate-proxy", &auth_url, &task).await?;

    // The ALB stand-in in front of the (cached) gateway. Its targets start unhealthy, as new ALB
    // targets do, so its ready time includes two health-check intervals.
    let door = loopback(free_port()?);
    let launch = Launch::new("front-door", o.self_exe)
        .args(["front-door", "--listen", &door.to_string()])
        .args(["--gateway", &gateway.addr.to_string(), "--auth", &auth.addr.to_string()])
        .ready(vec![Probe::http(door, "/tasks/health"), Probe::http(door, "/auth/health")]);
    let (process, ready) = start_timed(launch, &st.logs).await?;
    let front_door = RunningService { name: "front-door", process, addr: door, metrics: None, ready };

    let revoked = start_revoked(&st, &cluster, &task, sock).await?;
    let vpc = start_vpc(&st, &cluster, &database_url).await?;

    Ok(BenchStack {
        cluster,
        database_url,
        auth,
        task,
        gateway,
        gateway_uds,
        gateway_nocache,
        gateway_before,
        haproxy,
        haproxy_jwt,
        validate_proxy,
        front_door,
        revoked,
        vpc,
    })
}

/// auth-svc on a database of its own holding `o.revocations` live revocations, and a gateway
/// that pulls them through a counting relay (no delay).
async fn start_revoked(
    st: &Starter<'_>,
    cluster: &Cluster,
    task: &RunningService,
    socket: Option<&Path>,
) -> Result<Revoked> {
    let url = database(cluster, "revoked").await?;
    let pool = sqlx::PgPool::connect(&url).await?;
    let seeded = revocations::seed(&pool, st.o.revocations, 1000).await?;
    pool.close().await;
    let auth = st.auth("auth-svc-revoked", &url).await?;
    let relay = Relay::start(loopback(0), auth.addr, Duration::ZERO, DelayLine::start()?).await?;
    let relay_url = format!("http://{}", relay.listen);
    let gateway =
        st.gateway("gateway-revoked", &st.o.bin_dir.join("gateway"), task, socket, &relay_url, |_| {}).await?;
    Ok(Revoked { auth, gateway, relay, seeded })
}

async fn start_vpc(st: &Starter<'_>, cluster: &Cluster, database_url: &str) -> Result<Vpc> {
    let line = DelayLine::start()?;
    let delay = st.o.vpc_delay;
    let pg_relay = Relay::start(loopback(0), loopback(cluster.port()), delay, line.clone()).await?;
    let url = via(database_url, cluster.port(), pg_relay.listen.port());
    let auth = st.auth("auth-svc-vpc", &url).await?;
    let socket = st.o.run_dir.join("task-svc-vpc.sock");
    let task = st.task("task-svc-vpc", &url, &socket).await?;
    let auth_relay = Relay::start(loopback(0), auth.addr, delay, line).await?;
    let auth_url = format!("http://{}", auth_relay.listen);
    let sock = st.o.unix_upstream.then_some(socket.as_path());
    let gateway = st.gateway("gateway-vpc", &st.o.bin_dir.join("gateway"), &task, sock, &auth_url, |_| {}).await?;
    let validate_proxy = st.validate_proxy("validate-vpc", &auth_url, &task).await?;
    let haproxy_jwt = st.haproxy("haproxy-jwt-vpc", &task, sock, true).await?;
    Ok(Vpc { delay, pg_relay, auth_relay, auth, task, gateway, validate_proxy, haproxy_jwt })
}

impl BenchStack {
    /// Every process of the system and of the harness, in start order.
    pub fn services(&self) -> Vec<&RunningService> {
        let mut all = vec![&self.auth, &self.task, &self.gateway, &self.gateway_uds, &self.gateway_nocache];
        all.extend(self.gateway_before.as_ref());
        all.extend([&self.haproxy, &self.haproxy_jwt, &self.validate_proxy, &self.front_door]);
        all.extend([&self.revoked.auth, &self.revoked.gateway]);
        let v = &self.vpc;
        all.extend([&v.auth, &v.task, &v.gateway, &v.validate_proxy, &v.haproxy_jwt]);
        all
    }

    /// Stops every process (SIGTERM, short grace), latest started first, and the cluster.
    pub fn stop(self) {
        let BenchStack {
            cluster,
            auth,
            task,
            gateway,
            gateway_uds,
            gateway_nocache,
            gateway_before,
            haproxy,
            haproxy_jwt,
            validate_proxy,
            front_door,
            revoked,
            vpc,
            ..
        } = self;
        let mut all = vec![vpc.haproxy_jwt, vpc.validate_proxy, vpc.gateway, vpc.task, vpc.auth];
        all.extend([revoked.gateway, revoked.auth, front_door, validate_proxy, haproxy_jwt, haproxy]);
        all.extend(gateway_before);
        all.extend([gateway_nocache, gateway_uds, gateway, task, auth]);
        for mut s in all {
            let _ = s.process.stop(Duration::from_secs(5));
        }
        drop((vpc.pg_relay, vpc.auth_relay, revoked.relay));
        let _ = cluster.stop();
    }

    /// The postmaster's pid (first line of postmaster.pid).
    pub fn postgres_pid(&self, run_dir: &Path) -> Option<u32> {
        std::fs::read_to_string(run_dir.join("pg/data/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }
}
