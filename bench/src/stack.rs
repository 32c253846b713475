//! The system under test on loopback: a throwaway PostgreSQL cluster (devstack), auth-svc,
//! task-svc, two gateways (token cache on and off) and the per-request validation proxy, each
//! a real process whose start-to-ready time is measured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use devstack::postgres::{Cluster, Durability, free_port};
use devstack::process::{Output, Process};
use sqlx::{Connection, Executor, PgConnection};

pub const JWT_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";
const DATABASE: &str = "taskmgmt";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

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

/// Starts `program` and polls `GET http://probe{path}` every 2 ms until it answers 200.
async fn spawn_timed(
    name: &'static str,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    logs: &Path,
    probes: &[(SocketAddr, &str)],
) -> Result<(Process, Duration)> {
    if !program.exists() {
        bail!("{} not found (build it first, or point --bin-dir at the right directory)", program.display());
    }
    let output = Output::File(logs.join(format!("{name}.log")));
    let start = Instant::now();
    let mut process = Process::spawn(name, program, args, env, &output)?;
    for (addr, path) in probes {
        loop {
            if platform::healthcheck::probe(*addr, path, Duration::from_millis(500)).await {
                break;
            }
            if !process.is_running() {
                bail!("{name} exited before it was ready; see {}", logs.join(format!("{name}.log")).display());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{name} not ready at http://{addr}{path} after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok((process, start.elapsed()))
}

fn base_env(log_format_json: bool) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if log_format_json {
        // As on ECS (task definitions set LOG_FORMAT=json; RUST_LOG is left at its default).
        env.push(("LOG_FORMAT".into(), "json".into()));
    }
    env
}

/// A copy of sidecar.toml with `[cache] enabled` set as asked, plus the `--sidecar-set` keys.
fn write_sidecar(template: &Path, dest: &Path, cache: bool, set: &[(String, String)]) -> Result<()> {
    let text = std::fs::read_to_string(template).with_context(|| format!("read {}", template.display()))?;
    let mut doc: toml::Table = text.parse().with_context(|| format!("parse {}", template.display()))?;
    let cache_table = doc
        .entry("cache")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("[cache] is not a table")?;
    cache_table.insert("enabled".into(), toml::Value::Boolean(cache));
    for (key, raw) in set {
        let (table, name) = key.split_once('.').with_context(|| format!("--sidecar-set {key}: want table.key"))?;
        let value: toml::Value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .with_context(|| format!("--sidecar-set {key}: {raw} is not a TOML value"))?;
        doc.entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("[{table}] is not a table"))?
            .insert(name.to_owned(), value);
    }
    std::fs::write(dest, toml::to_string(&doc)?)?;
    Ok(())
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

fn extra(o: &StartOptions<'_>, name: &str, env: &mut Vec<(String, String)>) {
    for (process, k, v) in o.extra_env {
        if process == name {
            env.push((k.clone(), v.clone()));
        }
    }
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

    let auth_port = free_port()?;
    let auth_metrics = loopback(free_port()?);
    let mut env = base_env(true);
    env.extend([
        ("DATABASE_URL".into(), database_url.clone()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        ("PORT".into(), auth_port.to_string()),
        ("BIND_ADDR".into(), "127.0.0.1".into()),
        ("METRICS_ADDR".into(), auth_metrics.to_string()),
        ("SHUTDOWN_GRACE_SECS".into(), "2".into()),
        // The login cells measure hashing capacity from one machine, which the per-client limit
        // would answer with 429s; the per-account count stays in the measured path (one upsert
        // per login) with a limit the seeded users never reach.
        ("CLIENT_RATE_PER_MIN".into(), "off".into()),
        ("LOGIN_FAILURE_LIMIT".into(), "1000000".into()),
    ]);
    extra(o, "auth-svc", &mut env);
    let (process, ready) = spawn_timed(
        "auth-svc",
        &o.bin_dir.join("auth-svc"),
        &[],
        &env,
        &logs,
        &[(loopback(auth_port), "/auth/health")],
    )
    .await?;
    let auth = Service { name: "auth-svc", process, addr: loopback(auth_port), metrics: Some(auth_metrics), ready };

    let task_port = free_port()?;
    let task_metrics = loopback(free_port()?);
    let mut env = base_env(true);
    env.extend([
        ("DATABASE_URL".into(), database_url.clone()),
        ("PORT".into(), task_port.to_string()),
        ("BIND_ADDR".into(), "127.0.0.1".into()),
        ("METRICS_ADDR".into(), task_metrics.to_string()),
        ("SHUTDOWN_GRACE_SECS".into(), "2".into()),
    ]);
    extra(o, "task-svc", &mut env);
    let (process, ready) = spawn_timed(
        "task-svc",
        &o.bin_dir.join("task-svc"),
        &[],
        &env,
        &logs,
        &[(loopback(task_port), "/tasks/health")],
    )
    .await?;
    let task = Service { name: "task-svc", process, addr: loopback(task_port), metrics: Some(task_metrics), ready };

    let gateway = start_gateway("gateway", true, o, &logs, &auth, &task).await?;
    let gateway_nocache = start_gateway("gateway-nocache", false, o, &logs, &auth, &task).await?;

    let proxy_port = free_port()?;
    let listen = loopback(proxy_port).to_string();
    let auth_url = auth.url();
    let task_url = task.url();
    let (process, ready) = spawn_timed(
        "validate-proxy",
        o.self_exe,
        &["validate-proxy", "--listen", &listen, "--auth", &auth_url, "--upstream", &task_url],
        &[],
        &logs,
        &[(loopback(proxy_port), "/tasks/health")],
    )
    .await?;
    let validate_proxy = Service { name: "validate-proxy", process, addr: loopback(proxy_port), metrics: None, ready };

    // The ALB stand-in in front of the (cached) gateway. Its targets start unhealthy, as new ALB
    // targets do, so its ready time includes two health-check intervals.
    let door_port = free_port()?;
    let listen = loopback(door_port).to_string();
    let (gw, au) = (gateway.addr.to_string(), auth.addr.to_string());
    let (process, ready) = spawn_timed(
        "front-door",
        o.self_exe,
        &["front-door", "--listen", &listen, "--gateway", &gw, "--auth", &au],
        &[],
        &logs,
        &[(loopback(door_port), "/tasks/health"), (loopback(door_port), "/auth/health")],
    )
    .await?;
    let front_door = Service { name: "front-door", process, addr: loopback(door_port), metrics: None, ready };

    Ok(Stack { cluster, database_url, auth, task, gateway, gateway_nocache, validate_proxy, front_door })
}

async fn start_gateway(
    name: &'static str,
    cache: bool,
    o: &StartOptions<'_>,
    logs: &Path,
    auth: &Service,
    task: &Service,
) -> Result<Service> {
    let config: PathBuf = o.run_dir.join(format!("{name}.toml"));
    write_sidecar(o.sidecar, &config, cache, o.sidecar_set)?;
    let port = free_port()?;
    let metrics = loopback(free_port()?);
    let mut env = base_env(true);
    env.extend([
        ("GATEWAY_LISTEN".into(), loopback(port).to_string()),
        ("UPSTREAM_ADDR".into(), task.addr.to_string()),
        ("METRICS_ADDR".into(), metrics.to_string()),
        ("AUTH_SERVICE_URL".into(), auth.url()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
    ]);
    extra(o, name, &mut env);
    let config_arg = config.to_string_lossy().into_owned();
    // Ready: the keyring is loaded (/ready) and a request goes through to task-svc.
    let (process, ready) = spawn_timed(
        name,
        &o.bin_dir.join("gateway"),
        &["--config", &config_arg],
        &env,
        logs,
        &[(metrics, "/ready"), (loopback(port), "/tasks/health")],
    )
    .await?;
    Ok(Service { name, process, addr: loopback(port), metrics: Some(metrics), ready })
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
