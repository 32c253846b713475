//! The system's processes: the settings each one gets ([`Plan`]) and the steps that start them
//! in the order the ECS deployment does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use front_door::{FrontDoor, FrontDoorConfig, PoolKind};

use super::Options;
use super::child::{Child, Ports, TaskPair};
use super::prepare::{Listeners, Prerequisites};
use crate::launch::{
    AuthSvcSettings, GatewaySettings, Job, KeyringSource, ScrapeTarget, ServiceSettings, TaskSvcSettings, loopback,
};
use crate::logs::LogSink;

/// What every process of a run shares.
pub(super) struct Plan<'a> {
    pub(super) opts: &'a Options,
    pub(super) prerequisites: &'a Prerequisites,
    pub(super) database_url: &'a str,
    /// auth-svc's keyring.
    pub(super) keyring: KeyringSource,
    /// The gateways' keyring (auth-svc's JWKS in RS256/EdDSA mode).
    pub(super) gateway_keyring: KeyringSource,
    pub(super) run_dir: &'a Path,
    pub(super) logs: &'a LogSink,
}

impl Plan<'_> {
    /// `launch` with [`Options::service_env`].
    fn with_env(&self, launch: crate::launch::Launch) -> crate::launch::Launch {
        self.opts.service_env.iter().fold(launch, |l, (k, v)| l.env(k, v))
    }

    fn service(&self, listen: SocketAddr, metrics: SocketAddr) -> ServiceSettings {
        ServiceSettings {
            metrics: Some(metrics),
            shutdown_grace_secs: self.opts.service_grace_secs,
            ..ServiceSettings::new(self.database_url, listen)
        }
    }

    /// The auth-svc instances (`auth-1`, ...), not yet started; each takes its port and metrics
    /// port from `ports`.
    pub(super) fn auth_instances(&self, ports: &mut Ports) -> Result<Vec<Child>> {
        let mut auth = Vec::new();
        for i in 1..=self.opts.auth_instances {
            let addr = loopback(ports.take(&format!("auth-{i}"))?);
            let metrics = loopback(ports.take(&format!("auth-{i} metrics"))?);
            let settings = AuthSvcSettings {
                keyring_refresh_secs: self.opts.auth_keyring_refresh_secs.get(i - 1).copied(),
                ..AuthSvcSettings::new(self.service(addr, metrics), self.keyring.clone())
            };
            let launch = self.with_env(settings.launch(&format!("auth-{i}"), &self.prerequisites.auth_bin));
            auth.push(Child::new(launch, addr, metrics, self.logs));
        }
        Ok(auth)
    }

    /// The task-svc + gateway pairs (`task-svc-1` + `gateway-1`, ...), not yet started, and how
    /// long a gateway may take to stop. The gateways reach auth-svc at `auth_url`.
    pub(super) fn task_pairs(&self, ports: &mut Ports, auth_url: &str) -> Result<(Vec<TaskPair>, Duration)> {
        let mut tasks = Vec::new();
        let mut gateway_stop = Duration::ZERO;
        for i in 1..=self.opts.task_instances {
            let svc_addr = loopback(ports.take(&format!("task-svc-{i}"))?);
            let svc_metrics = loopback(ports.take(&format!("task-svc-{i} metrics"))?);
            let gw_addr = loopback(ports.take(&format!("gateway-{i}"))?);
            let gw_metrics = loopback(ports.take(&format!("gateway-{i} metrics"))?);
            let launch = TaskSvcSettings::new(self.service(svc_addr, svc_metrics))
                .launch(&format!("task-svc-{i}"), &self.prerequisites.task_bin);
            let launch = self.with_env(launch);
            let svc = Child::new(launch, svc_addr, svc_metrics, self.logs);
            let gateway = GatewaySettings {
                upstream_metrics: Some(svc_metrics),
                ..GatewaySettings::new(
                    self.prerequisites.sidecar.clone(),
                    self.run_dir.join("sidecar.toml"),
                    gw_addr,
                    gw_metrics,
                    svc_addr,
                    auth_url,
                    self.gateway_keyring.clone(),
                )
            };
            gateway_stop = gateway.stop_timeout();
            let launch = self.with_env(gateway.launch(&format!("gateway-{i}"), &self.prerequisites.gateway_bin)?);
            tasks.push(TaskPair { svc, gateway: Child::new(launch, gw_addr, gw_metrics, self.logs) });
        }
        Ok((tasks, gateway_stop))
    }
}

/// Starts auth-svc and task-svc all together and waits until each answers. They migrate the
/// database, advisory-locked, so starting them together is safe.
pub(super) async fn start_services(
    auth: &mut [Child],
    tasks: &mut [TaskPair],
    logs: &LogSink,
    timeout: Duration,
) -> Result<()> {
    for child in auth.iter_mut().chain(tasks.iter_mut().map(|t| &mut t.svc)) {
        child.spawn(logs)?;
    }
    for child in auth.iter_mut().chain(tasks.iter_mut().map(|t| &mut t.svc)) {
        child.wait_ready(timeout).await?;
    }
    Ok(())
}

/// Starts each gateway (after its task-svc answers: the task definition's dependsOn HEALTHY);
/// does not wait for them.
pub(super) fn spawn_gateways(tasks: &mut [TaskPair], logs: &LogSink) -> Result<()> {
    for t in tasks {
        t.gateway.spawn(logs)?;
    }
    Ok(())
}

/// Starts the front door with every auth-svc instance and every task's gateway as targets. It
/// starts before the gateways are ready: it is also their way to auth-svc (the Cloud Map
/// stand-in), and a gateway is ready only once it has pulled the revocation list from there.
/// Its health checks take each task into rotation when it answers.
pub(super) fn start_front_door(
    listeners: Listeners,
    auth: &[Child],
    tasks: &[TaskPair],
    config: &FrontDoorConfig,
) -> Result<FrontDoor> {
    let mut targets: Vec<(String, SocketAddr, PoolKind)> = Vec::new();
    for a in auth {
        targets.push((a.name().to_owned(), a.addr, PoolKind::Auth));
    }
    for (i, t) in tasks.iter().enumerate() {
        targets.push((format!("task-{}", i + 1), t.gateway.addr, PoolKind::Tasks));
    }
    FrontDoor::start(listeners.public, listeners.internal, targets, config.clone())
}

/// Waits until every gateway is ready (keyring loaded, revocation list pulled, task-svc reached).
pub(super) async fn wait_gateways_ready(tasks: &mut [TaskPair], timeout: Duration) -> Result<()> {
    for t in tasks {
        t.gateway.wait_ready(timeout).await?;
    }
    Ok(())
}

/// Starts the local Prometheus scraping every process, and waits until it is ready; `None`
/// when it is off.
pub(super) async fn start_prometheus(plan: &Plan<'_>, auth: &[Child], tasks: &[TaskPair]) -> Result<Option<Child>> {
    let (Some(p), Some((program, listen))) = (&plan.opts.prometheus, &plan.prerequisites.prometheus) else {
        return Ok(None);
    };
    let launch =
        p.settings(program.clone(), *listen, plan.run_dir, scrape_targets(auth, tasks))?.launch("prometheus")?;
    let mut child = Child::new(launch, *listen, *listen, plan.logs);
    child.spawn(plan.logs)?;
    child.wait_ready(plan.opts.ready_timeout).await?;
    Ok(Some(child))
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
