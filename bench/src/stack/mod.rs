//! The system under test on loopback: a throwaway PostgreSQL cluster (devstack), auth-svc,
//! task-svc, the gateways (over task-svc's Unix socket and over TCP, without the token cache,
//! an older build when given, one with many live revocations), HAProxy with and without a JWT
//! check, the per-request validation proxy and the front door; and the same paths again where
//! delay relays make the network look like a VPC. Each is a real process whose start-to-ready
//! time is measured.

mod service;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use devstack::launch::loopback;
use devstack::postgres::{Cluster, free_port};
use sqlx::{Connection, Executor, PgConnection};

use crate::haproxy::HaproxyPeer;
use crate::relay::{DelayLine, Relay};
use crate::revocations;
pub use devstack::launch::RunningService;
pub use service::StartOptions;
use service::Starter;

const DATABASE: &str = "taskmgmt";

/// Every process of the system under test, and the cluster they share.
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
    /// The `--variant` gateways, by path name (`gateway-NAME`).
    pub variants: Vec<(&'static str, RunningService)>,
    pub haproxy: RunningService,
    pub haproxy_jwt: RunningService,
    /// HAProxy's JWT check with an access line per request (the gateway's like-for-like peer).
    pub haproxy_jwt_log: RunningService,
    pub validate_proxy: RunningService,
    pub front_door: RunningService,
    pub revoked: Revoked,
    pub vpc: Vpc,
    /// `--callgrind`: a gateway and a JWT-checking HAProxy under valgrind's callgrind, by the
    /// path they stand for.
    pub callgrind: Vec<(&'static str, RunningService)>,
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

/// Starts the whole stack: the cluster and its database, then every process in order.
/// Errors: a process did not start or get ready within its deadline (its log says why).
pub async fn start(o: &StartOptions<'_>) -> Result<BenchStack> {
    let st = Starter::new(o)?;
    let pg_port = free_port()?;
    let (pg_dir, durability) = (o.run_dir.join("pg"), o.durability);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&pg_dir, pg_port, durability)).await??;
    // Migrate first: the start-to-ready times are those of a restart against a ready database.
    let database_url = database(&cluster, DATABASE).await?;
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
        Some(dir) => Some(start_before(&st, &dir.join("gateway"), &task, &auth_url).await?),
        None => None,
    };
    let mut variants = Vec::new();
    for (path, sets) in o.variants {
        // A handful per run, alive for the whole run: leaking the names is simpler than
        // owning them everywhere a service name is a `&'static str`.
        let name: &'static str = Box::leak(path.clone().into_boxed_str());
        variants.push((name, st.variant(name, sets, &task, sock, &auth_url).await?));
    }
    let haproxy = st.haproxy("haproxy", &task, sock, HaproxyPeer::Plain).await?;
    let haproxy_jwt = st.haproxy("haproxy-jwt", &task, sock, HaproxyPeer::Jwt).await?;
    let haproxy_jwt_log = st.haproxy("haproxy-jwt-log", &task, sock, HaproxyPeer::JwtLogged).await?;
    let validate_proxy = st.validate_proxy("validate-proxy", &auth_url, &task).await?;

    let front_door = st.front_door(&gateway, &auth).await?;

    let revoked = start_revoked(&st, &cluster, &task, sock).await?;
    let vpc = start_vpc(&st, &cluster, &database_url).await?;
    let callgrind = if o.callgrind { start_callgrind(&st, &task, sock, &auth_url).await? } else { Vec::new() };

    Ok(BenchStack {
        cluster,
        database_url,
        auth,
        task,
        gateway,
        gateway_uds,
        gateway_nocache,
        gateway_before,
        variants,
        haproxy,
        haproxy_jwt,
        haproxy_jwt_log,
        validate_proxy,
        front_door,
        revoked,
        vpc,
        callgrind,
    })
}

/// The `--baseline-bin` gateway with the bench's sidecar. A build from before `[rate_limit]`
/// existed refuses that table (unknown tables stop a gateway at start): it is started again
/// without it, which such a build does not need.
async fn start_before(
    st: &Starter<'_>,
    program: &Path,
    task: &RunningService,
    auth_url: &str,
) -> Result<RunningService> {
    match st.gateway("gateway-before", program, task, None, auth_url, |_| {}).await {
        Ok(before) => Ok(before),
        Err(e) => {
            eprintln!("gateway-before did not start with [rate_limit] ({e:#}); starting it without the table");
            st.gateway("gateway-before", program, task, None, auth_url, |s| s.rate_limit = Default::default()).await
        }
    }
}

/// The gateway and HAProxy with its JWT check, without and with an access log, each under
/// callgrind (their own processes: valgrind slows them tens of times).
async fn start_callgrind(
    st: &Starter<'_>,
    task: &RunningService,
    sock: Option<&Path>,
    auth_url: &str,
) -> Result<Vec<(&'static str, RunningService)>> {
    let run_dir = st.o.run_dir;
    let gateway = crate::callgrind::wrapper(run_dir, "gateway-callgrind", &st.o.bin_dir.join("gateway"))?;
    let gateway = st.gateway("gateway-callgrind", &gateway, task, sock, auth_url, |_| {}).await?;
    let haproxy = crate::callgrind::wrapper(run_dir, "haproxy-jwt-callgrind", st.o.haproxy)?;
    let haproxy = st.haproxy_program("haproxy-jwt-callgrind", &haproxy, task, sock, HaproxyPeer::Jwt).await?;
    let logged = crate::callgrind::wrapper(run_dir, "haproxy-jwt-log-callgrind", st.o.haproxy)?;
    let logged = st.haproxy_program("haproxy-jwt-log-callgrind", &logged, task, sock, HaproxyPeer::JwtLogged).await?;
    Ok(vec![("gateway", gateway), ("haproxy-jwt", haproxy), ("haproxy-jwt-log", logged)])
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
    let haproxy_jwt = st.haproxy("haproxy-jwt-vpc", &task, sock, HaproxyPeer::Jwt).await?;
    Ok(Vpc { delay, pg_relay, auth_relay, auth, task, gateway, validate_proxy, haproxy_jwt })
}

impl BenchStack {
    /// Every process of the system and of the harness, in start order.
    pub fn services(&self) -> Vec<&RunningService> {
        let mut all = vec![&self.auth, &self.task, &self.gateway, &self.gateway_uds, &self.gateway_nocache];
        all.extend(self.gateway_before.as_ref());
        all.extend(self.variants.iter().map(|(_, s)| s));
        all.extend([&self.haproxy, &self.haproxy_jwt, &self.haproxy_jwt_log, &self.validate_proxy, &self.front_door]);
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
            variants,
            haproxy,
            haproxy_jwt,
            haproxy_jwt_log,
            validate_proxy,
            front_door,
            revoked,
            vpc,
            callgrind,
            ..
        } = self;
        let mut all: Vec<RunningService> = callgrind.into_iter().map(|(_, s)| s).collect();
        all.extend([vpc.haproxy_jwt, vpc.validate_proxy, vpc.gateway, vpc.task, vpc.auth]);
        all.extend([revoked.gateway, revoked.auth, front_door, validate_proxy, haproxy_jwt_log, haproxy_jwt, haproxy]);
        all.extend(gateway_before);
        all.extend(variants.into_iter().rev().map(|(_, s)| s));
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
