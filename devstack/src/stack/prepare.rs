//! The checks and reservations before anything starts: a missing binary, config or program,
//! or a taken port, fails the run with a message saying what to do, and nothing is left running.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gateway::config::SidecarFile;
use tokio::net::TcpListener;

use super::Options;
use super::child::Ports;
use crate::launch::Binaries;
use crate::logs::LogSink;
use crate::monitoring::PrometheusPort;

/// Everything a run needs that is not started by it.
pub(super) struct Prerequisites {
    pub(super) auth_bin: PathBuf,
    pub(super) task_bin: PathBuf,
    pub(super) gateway_bin: PathBuf,
    /// The gateways' config, with the run's overrides applied.
    pub(super) sidecar: SidecarFile,
    /// Prometheus' program and listen address, unless it is off.
    pub(super) prometheus: Option<(PathBuf, SocketAddr)>,
}

/// Finds the binaries and programs and reads the gateway config; logs when Prometheus' preferred
/// port is taken and another is used.
pub(super) fn check(opts: &Options, logs: &LogSink) -> Result<Prerequisites> {
    if opts.auth_instances == 0 || opts.task_instances == 0 {
        bail!("at least one auth-svc instance and one task are needed");
    }
    let binaries = Binaries::new(&opts.bin_dir);
    let (auth_bin, task_bin, gateway_bin) =
        (binaries.path("auth-svc")?, binaries.path("task-svc")?, binaries.path("gateway")?);
    let sidecar = sidecar_config(opts)?;

    // PostgreSQL's binaries, checked before anything starts: the message says how to
    // install them.
    if opts.database_url.is_none() {
        crate::postgres::bin_dir()?;
    }
    // Prometheus' binary and port likewise.
    let prometheus = match &opts.prometheus {
        Some(p) => Some((p.find_program()?, p.pick_addr()?)),
        None => None,
    };
    if let (Some(p), Some((_, addr))) = (&opts.prometheus, &prometheus)
        && let PrometheusPort::Preferred(port) = p.port
        && addr.port() != port
    {
        logs.line("devstack", &format!("127.0.0.1:{port} is taken (another Prometheus?): Prometheus uses {addr}"));
    }
    Ok(Prerequisites { auth_bin, task_bin, gateway_bin, sidecar, prometheus })
}

/// `opts.sidecar_config` with the shutdown overrides and `sidecar_set` applied.
fn sidecar_config(opts: &Options) -> Result<SidecarFile> {
    if !opts.sidecar_config.exists() {
        bail!("gateway config {} not found (--sidecar-config names the file to use)", opts.sidecar_config.display());
    }
    let mut sidecar = SidecarFile::read(&opts.sidecar_config).context("the gateway config (--sidecar-config)")?;
    if let Some(grace) = opts.gateway_grace_secs {
        sidecar.shutdown.grace_period_secs = grace;
    }
    if let Some(timeout) = opts.gateway_shutdown_timeout_secs {
        sidecar.shutdown.graceful_shutdown_timeout_secs = timeout;
    }
    for (key, value) in &opts.sidecar_set {
        sidecar.set(key, value).map_err(|e| anyhow::anyhow!("gateway config (--sidecar-set {key}={value}): {e}"))?;
    }
    // As on ECS, where each gateway counts the task-service tasks in Cloud Map, the fleet rate
    // of a subject is split over this stack's gateways (the front door spreads requests over
    // them); a config that names its own N or DNS name keeps it.
    if sidecar.rate_limit.peers == 0 && sidecar.rate_limit.peers_dns_name.trim().is_empty() {
        sidecar.rate_limit.peers = u32::try_from(opts.task_instances.max(1)).unwrap_or(u32::MAX);
    }
    // Every key's own rules (ranges, addresses), as each gateway will check them, now: a bad
    // value then fails the run before PostgreSQL and the services start, not each gateway after.
    // The keyring is not the file's (the run sets it per gateway), so a placeholder stands in.
    gateway::config::Config::from_file(sidecar.clone(), &PlaceholderKeyring).map_err(|e| {
        // The flag that set the refused key, when one did: `[table] key` is `table.key` there.
        let set = opts
            .sidecar_set
            .iter()
            .find(|(k, _)| k.split_once('.').is_some_and(|(t, k)| e.key == format!("[{t}] {k}")));
        match set {
            Some((key, value)) => anyhow::anyhow!("gateway config (--sidecar-set {key}={value}): {e}"),
            None => anyhow::anyhow!("gateway config ({}): {e}", opts.sidecar_config.display()),
        }
    })?;
    Ok(sidecar)
}

/// An environment with only a valid `JWT_SECRET`, to check a gateway config without its keyring.
struct PlaceholderKeyring;

impl platform::config::Source for PlaceholderKeyring {
    fn get(&self, key: &str) -> Option<String> {
        (key == "JWT_SECRET").then(|| "k".repeat(64))
    }
}

/// The front door's two listeners, bound first so that a taken port fails the run before
/// anything is started.
pub(super) struct Listeners {
    /// The ALB stand-in (`--port`).
    pub(super) public: TcpListener,
    /// The Cloud Map stand-in the gateways reach auth-svc through (the first internal port).
    pub(super) internal: TcpListener,
}

impl Listeners {
    /// Binds both; `ports` records them so no later internal port repeats them.
    pub(super) async fn bind(opts: &Options, ports: &mut Ports) -> Result<Self> {
        let public = front_door::bind(opts.port, "front door", "--port").await?;
        let internal = front_door::bind(ports.take("auth discovery")?, "auth discovery", "--base-port").await?;
        ports.used.insert(internal.local_addr()?.port());
        if let Ok(a) = public.local_addr() {
            ports.used.insert(a.port());
        }
        Ok(Self { public, internal })
    }

    /// The internal listener's port.
    pub(super) fn internal_port(&self) -> Result<u16> {
        Ok(self.internal.local_addr()?.port())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn options(tasks: usize, sets: &[(&str, &str)]) -> Options {
        let mut opts = Options::new(std::path::PathBuf::from("/nonexistent"));
        opts.sidecar_config = crate::stack::repo_root().join("sidecar.toml");
        opts.task_instances = tasks;
        opts.sidecar_set = sets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        opts
    }

    /// Each gateway of the stack gets its share of a subject's fleet rate, as on ECS.
    #[test]
    fn the_gateways_split_the_fleet_rate_over_the_stacks_tasks_unless_told_otherwise() {
        assert_eq!(sidecar_config(&options(2, &[])).unwrap().rate_limit.peers, 2);
        assert_eq!(sidecar_config(&options(3, &[("rate_limit.peers", "1")])).unwrap().rate_limit.peers, 1);
        let dns = sidecar_config(&options(2, &[("rate_limit.peers_dns_name", "\"tasks.local\"")])).unwrap();
        assert_eq!((dns.rate_limit.peers, dns.rate_limit.peers_dns_name.as_str()), (0, "tasks.local"));
    }

    /// `--sidecar-set` reaches the gateways' file, and a key or value a gateway would refuse
    /// fails the run before anything starts, naming the key.
    #[test]
    fn a_set_key_is_applied_and_a_bad_one_is_refused_before_the_start() {
        let all = sidecar_config(&options(2, &[("access_log.successes", "1")])).unwrap();
        assert_eq!(all.access_log.successes, 1.0);
        for (key, value, named) in [
            ("access_log.successes", "2", "[access_log] successes"),
            ("access_log.slow_ms", "3600001", "[access_log] slow_ms"),
            ("access_log.sucesses", "1", "sucesses"),
            ("server.threads", "\"two\"", "server.threads"),
        ] {
            let e = format!("{:#}", sidecar_config(&options(2, &[(key, value)])).unwrap_err());
            assert!(e.contains(named) && e.contains(&format!("--sidecar-set {key}={value}")), "{key}={value}: {e}");
        }
    }
}
