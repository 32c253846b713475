//! The bench's processes, each started and timed: auth-svc, task-svc, the gateways, HAProxy,
//! the per-request validation proxy and the front door (the last two are this binary's
//! internal subcommands).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use devstack::launch::{
    AuthSvcSettings, Binaries, GatewaySettings, KeyringSource, Launch, Logging, Probe, RunningService, ServiceSettings,
    TaskSvcSettings, Throttles, loopback,
};
use devstack::postgres::{Durability, free_port};
use devstack::process::{Output, Process};
use gateway::config::SidecarFile;
use platform::Secret;

use crate::haproxy::{Haproxy, HaproxyPeer, JwtCheck, Upstream};
use crate::options::{EnvOverride, SidecarOverride};

/// The HS256 secret every token of the run is signed with (gateways and HAProxy check it).
const JWT_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

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

/// What the stack is started from: where the binaries, config and run directory are, and the
/// options that change a process.
pub struct StartOptions<'a> {
    pub bin_dir: &'a Path,
    pub self_exe: &'a Path,
    pub run_dir: &'a Path,
    pub sidecar: &'a Path,
    pub durability: Durability,
    /// Extra environment per process name.
    pub extra_env: &'a [EnvOverride],
    /// Edits of the repository's sidecar.toml for every gateway.
    pub sidecar_set: &'a [SidecarOverride],
    /// `--variant`s: one more gateway per path name, with these keys changed.
    pub variants: &'a [(String, Vec<SidecarOverride>)],
    /// A directory with another build's `gateway` (the "before" of a change).
    pub baseline_bin: Option<&'a Path>,
    pub haproxy: &'a Path,
    /// Live revocations for the revoked gateway's auth-svc.
    pub revocations: u32,
    /// One-way delay of the VPC relays.
    pub vpc_delay: Duration,
    /// The gateways and HAProxy peers reach task-svc over its Unix socket (else TCP).
    pub unix_upstream: bool,
    /// Also start a gateway and a JWT-checking HAProxy under callgrind (`--callgrind`).
    pub callgrind: bool,
}

/// `--env PROC:KEY=VALUE` for the process named `name`.
fn extra(o: &StartOptions<'_>, name: &str, mut launch: Launch) -> Launch {
    for e in o.extra_env.iter().filter(|e| e.process == name) {
        launch = launch.env(&e.key, &e.value);
    }
    launch
}

/// Starts the bench's processes, with everything they share.
pub struct Starter<'a> {
    pub o: &'a StartOptions<'a>,
    logs: PathBuf,
    sidecar: SidecarFile,
    keyring: KeyringSource,
    binaries: Binaries,
}

impl<'a> Starter<'a> {
    /// Processes log to `<run_dir>/logs/<name>.log`; the gateways get the repository's
    /// sidecar.toml with `--sidecar-set`'s edits. Errors: the file or an edit is invalid.
    pub fn new(o: &'a StartOptions<'a>) -> Result<Self> {
        let logs = o.run_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut sidecar = SidecarFile::read(o.sidecar)?;
        // The cells send thousands of requests a second as a few hundred users, far above the
        // per-subject limit: the limits stay on (their check is part of the measured path) at a
        // rate no cell reaches. gateway-nolimits turns them off; `--sidecar-set` can lower them.
        sidecar.rate_limit.fleet_rate_per_sec = 1_000_000;
        sidecar.rate_limit.burst = 1_000_000;
        for edit in o.sidecar_set {
            sidecar.set(&edit.key, &edit.value).map_err(|e| anyhow::anyhow!("--sidecar-set {e}"))?;
        }
        Ok(Starter { o, logs, sidecar, keyring: KeyringSource::secret(JWT_SECRET), binaries: Binaries::new(o.bin_dir) })
    }

    pub async fn auth(&self, name: &'static str, database_url: &str) -> Result<RunningService> {
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

    pub async fn task(&self, name: &'static str, database_url: &str, socket: &Path) -> Result<RunningService> {
        let settings = TaskSvcSettings {
            logging: Logging::json(),
            unix_socket: Some(socket.to_path_buf()),
            ..TaskSvcSettings::new(service(database_url)?)
        };
        let launch = extra(self.o, name, settings.launch(name, &self.binaries.dir.join("task-svc")));
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: settings.service.listen, metrics: settings.service.metrics, ready })
    }

    /// A `--variant` gateway: `name` (`gateway-NAME`) with `sets` applied on top of the common
    /// sidecar, over TCP (or the socket, as the main gateway). Errors: a key or value the
    /// sidecar file does not take, named.
    pub async fn variant(
        &self,
        name: &'static str,
        sets: &[SidecarOverride],
        task: &RunningService,
        socket: Option<&Path>,
        auth_url: &str,
    ) -> Result<RunningService> {
        let mut checked = self.sidecar.clone();
        for e in sets {
            checked.set(&e.key, &e.value).map_err(|err| anyhow::anyhow!("--variant {name}: {err}"))?;
        }
        let program = self.o.bin_dir.join("gateway");
        self.gateway(name, &program, task, socket, auth_url, |s| {
            for e in sets {
                // Checked above on the same file.
                let _ = s.set(&e.key, &e.value);
            }
        })
        .await
    }

    /// A gateway in front of `task`: over its Unix socket when `socket` is given, else TCP.
    pub async fn gateway(
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
        let settings = GatewaySettings {
            logging: Logging::json(),
            upstream_metrics: task.metrics,
            ..GatewaySettings::new(
                sidecar,
                self.o.run_dir.join(format!("{name}.toml")),
                listen,
                metrics,
                task.addr,
                auth_url,
                self.keyring.clone(),
            )
        };
        // Ready: the keyring is loaded and the revocation list pulled (/ready), and a request
        // goes through to task-svc.
        let launch = extra(self.o, name, settings.launch(name, program)?);
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name, process, addr: listen, metrics: Some(metrics), ready })
    }

    pub async fn validate_proxy(
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
    pub async fn haproxy(
        &self,
        name: &'static str,
        task: &RunningService,
        socket: Option<&Path>,
        peer: HaproxyPeer,
    ) -> Result<RunningService> {
        self.haproxy_program(name, self.o.haproxy, task, socket, peer).await
    }

    /// [`Starter::haproxy`] running `program` (HAProxy itself, or a wrapper that runs it).
    pub async fn haproxy_program(
        &self,
        name: &'static str,
        program: &Path,
        task: &RunningService,
        socket: Option<&Path>,
        peer: HaproxyPeer,
    ) -> Result<RunningService> {
        let listen = loopback(free_port()?);
        let jwt = peer != HaproxyPeer::Plain;
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
            access_log: peer == HaproxyPeer::JwtLogged,
        };
        let launch = settings.launch(name, program, &self.o.run_dir.join(format!("{name}.cfg")))?;
        let (process, ready) = start_timed(extra(self.o, name, launch), &self.logs).await?;
        Ok(RunningService { name, process, addr: listen, metrics: None, ready })
    }

    /// The ALB stand-in in front of `gateway` (`/tasks*`) and `auth` (`/auth*`). Its targets
    /// start unhealthy, as new ALB targets do, so its ready time includes two health-check
    /// intervals.
    pub async fn front_door(&self, gateway: &RunningService, auth: &RunningService) -> Result<RunningService> {
        let door = loopback(free_port()?);
        let launch = Launch::new("front-door", self.o.self_exe)
            .args(["front-door", "--listen", &door.to_string()])
            .args(["--gateway", &gateway.addr.to_string(), "--auth", &auth.addr.to_string()])
            .ready(vec![Probe::http(door, "/tasks/health"), Probe::http(door, "/auth/health")]);
        let (process, ready) = start_timed(launch, &self.logs).await?;
        Ok(RunningService { name: "front-door", process, addr: door, metrics: None, ready })
    }
}
