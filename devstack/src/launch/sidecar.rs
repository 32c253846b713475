//! The gateway sidecar's settings: its `sidecar.toml` and the environment ECS sets per task.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use gateway::config::SidecarFile;

use super::{Env, KeyringSource, Launch, Logging, Probe};

/// The gateway sidecar: `sidecar.toml` (written to `config_path` from `sidecar`) plus the
/// per-task environment overrides ECS sets (`GATEWAY_LISTEN`, `UPSTREAM_ADDR`, `METRICS_ADDR`,
/// `AUTH_SERVICE_URL`, the keyring).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    pub sidecar: SidecarFile,
    /// Where the config file is written.
    pub config_path: PathBuf,
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    /// task-svc.
    pub upstream: SocketAddr,
    /// task-svc's metrics listener, passed through at `/metrics/task-svc` (`UPSTREAM_METRICS_ADDR`;
    /// `None` is `off`).
    pub upstream_metrics: Option<SocketAddr>,
    /// auth-svc for the fallback, e.g. `http://localhost:3000`.
    pub auth_url: String,
    pub keyring: KeyringSource,
    pub logging: Logging,
    /// What counts as ready: by default the keyring is loaded and the revocation list pulled
    /// (`/ready`), and a request reaches task-svc (`/tasks/health`).
    pub ready: Vec<Probe>,
}

impl GatewaySettings {
    pub fn new(
        sidecar: SidecarFile,
        config_path: PathBuf,
        listen: SocketAddr,
        metrics: SocketAddr,
        upstream: SocketAddr,
        auth_url: impl Into<String>,
        keyring: KeyringSource,
    ) -> Self {
        Self {
            sidecar,
            config_path,
            listen,
            metrics,
            upstream,
            upstream_metrics: None,
            auth_url: auth_url.into(),
            keyring,
            logging: Logging::default(),
            ready: vec![Probe::http(metrics, "/ready"), Probe::http(listen, "/tasks/health")],
        }
    }

    /// The grace and final timeout of its `[shutdown]`: how long a SIGTERM may take.
    pub fn stop_timeout(&self) -> Duration {
        let s = &self.sidecar.shutdown;
        Duration::from_secs(s.grace_period_secs + s.graceful_shutdown_timeout_secs)
    }

    /// Writes the config file and returns the process.
    pub fn launch(&self, name: &str, program: &Path) -> Result<Launch> {
        let text = self.sidecar.to_toml().map_err(anyhow::Error::msg).context("serialising sidecar.toml")?;
        let header = "# Written by devstack::launch from gateway::config::SidecarFile; see the repository's sidecar.toml for what each key means.\n";
        std::fs::write(&self.config_path, format!("{header}{text}"))
            .with_context(|| format!("could not write {}", self.config_path.display()))?;
        let mut env = Env::default();
        env.set("GATEWAY_LISTEN", &self.listen.to_string());
        env.set("UPSTREAM_ADDR", &self.upstream.to_string());
        env.set("UPSTREAM_METRICS_ADDR", &self.upstream_metrics.map_or_else(|| "off".to_owned(), |m| m.to_string()));
        env.set("METRICS_ADDR", &self.metrics.to_string());
        env.set("AUTH_SERVICE_URL", &self.auth_url);
        self.keyring.env(&mut env);
        Ok(Launch::new(name, program)
            .arg("--config")
            .arg(self.config_path.display().to_string())
            .with_env(env)
            .logging(&self.logging)
            .ready(self.ready.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::loopback;

    #[test]
    fn the_gateway_config_is_written_through_the_schema() {
        let dir = std::env::temp_dir().join(format!("launch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let mut sidecar = SidecarFile::default();
        sidecar.cache.enabled = false;
        sidecar.shutdown.grace_period_secs = 1;
        let gw = GatewaySettings::new(
            sidecar.clone(),
            dir.join("sidecar.toml"),
            loopback(1),
            loopback(2),
            loopback(3),
            "http://localhost:4",
            KeyringSource::secret("k"),
        );
        let launch = gw.launch("gateway-1", Path::new("gateway"));
        assert!(launch.is_ok(), "{launch:?}");
        let read = SidecarFile::read(&dir.join("sidecar.toml"));
        assert_eq!(read.ok(), Some(sidecar));
        assert_eq!(gw.stop_timeout(), Duration::from_secs(1 + 5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
