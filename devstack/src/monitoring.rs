//! The local stack's Prometheus: what the run command and the tests choose about it
//! ([`PrometheusOptions`]), finding the binary, picking its port, and the settings
//! ([`launch::PrometheusSettings`]) for the stack's processes. See docs/local-run.md, "Prometheus", and
//! docs/observability.md.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::launch::{self, ScrapeTarget, loopback};
use crate::postgres::free_port;

/// The port Prometheus listens on by default (its registered default).
pub const DEFAULT_PORT: u16 = 9090;

/// Which port the UI and API get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrometheusPort {
    /// This port when it is free, else a free one (the banner prints which). The run
    /// command's default: the Debian package's own service may already hold 9090.
    Preferred(u16),
    /// Exactly this port, an error when taken (`--prometheus-port`); 0 picks a free one.
    Exactly(u16),
}

/// The stack's Prometheus (`Options::prometheus`; `None` is `--no-prometheus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusOptions {
    /// The server binary: a bare name is looked up on `PATH` (default `prometheus`, from the
    /// Debian package of that name).
    pub program: PathBuf,
    pub port: PrometheusPort,
    /// Scrape interval (and timeout). Short locally, so graphs and alerts react within seconds;
    /// ECS uses 15 s.
    pub scrape_interval: Duration,
    /// Rule evaluation interval; the rules' own `for:` durations are unchanged.
    pub evaluation_interval: Duration,
    /// The rule files loaded unchanged: every `*.yml` in this directory.
    pub rules_dir: PathBuf,
    /// Prometheus' own `--log.level`; its lines are printed with the prefix `prometheus`.
    pub log_level: String,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("prometheus"),
            port: PrometheusPort::Preferred(DEFAULT_PORT),
            scrape_interval: Duration::from_secs(2),
            evaluation_interval: Duration::from_secs(2),
            rules_dir: crate::stack::repo_root().join("ecs/prometheus/rules"),
            log_level: "warn".to_owned(),
        }
    }
}

impl PrometheusOptions {
    /// The binary's path; when it is missing, an error saying how to install it or turn it off.
    pub fn find_program(&self) -> Result<PathBuf> {
        let bare = self.program.components().count() == 1;
        let found = if bare {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(|dir| dir.join(&self.program))
                .find(|p| p.is_file())
        } else {
            self.program.is_file().then(|| self.program.clone())
        };
        match found {
            Some(path) => Ok(path),
            None => bail!(
                "{} not found{}: install the Debian package `prometheus` \
                 (scripts/setup.sh run does, or `sudo apt-get install prometheus`), \
                 or start without it: --no-prometheus",
                self.program.display(),
                if bare { " on PATH" } else { "" }
            ),
        }
    }

    /// The listen address: see [`PrometheusPort`].
    pub fn pick_addr(&self) -> Result<SocketAddr> {
        let free = |port: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        let port = match self.port {
            PrometheusPort::Exactly(0) => free_port()?,
            PrometheusPort::Exactly(port) if free(port) => port,
            PrometheusPort::Exactly(port) => {
                bail!(
                    "127.0.0.1:{port} (Prometheus) is already in use; choose another --prometheus-port (0: any free port) or --no-prometheus"
                )
            }
            PrometheusPort::Preferred(port) if free(port) => port,
            PrometheusPort::Preferred(_) => free_port()?,
        };
        Ok(loopback(port))
    }

    /// The server's settings: config and data in `run_dir` (`prometheus.yml`,
    /// `prometheus/`), scraping `targets`.
    pub fn settings(
        &self,
        program: PathBuf,
        listen: SocketAddr,
        run_dir: &Path,
        targets: Vec<ScrapeTarget>,
    ) -> Result<launch::PrometheusSettings> {
        Ok(launch::PrometheusSettings {
            program,
            listen,
            config_path: run_dir.join("prometheus.yml"),
            data_dir: run_dir.join("prometheus"),
            rule_files: launch::prometheus::rule_files(&self.rules_dir)?,
            scrape_interval: self.scrape_interval,
            evaluation_interval: self.evaluation_interval,
            external_labels: BTreeMap::from([("stack".to_owned(), "task-mgmt-local".to_owned())]),
            targets,
            log_level: self.log_level.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it_or_turn_it_off() {
        let opts = PrometheusOptions { program: "no-such-prometheus".into(), ..PrometheusOptions::default() };
        let err = format!("{:#}", opts.find_program().unwrap_err());
        assert!(err.contains("no-such-prometheus not found on PATH"), "{err}");
        assert!(err.contains("apt-get install prometheus") && err.contains("--no-prometheus"), "{err}");
        let opts = PrometheusOptions { program: "/nonexistent/prometheus".into(), ..PrometheusOptions::default() };
        assert!(opts.find_program().is_err());
    }

    #[test]
    fn a_taken_port_is_an_error_only_when_asked_for_exactly() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let exactly = PrometheusOptions { port: PrometheusPort::Exactly(port), ..PrometheusOptions::default() };
        let err = format!("{:#}", exactly.pick_addr().unwrap_err());
        assert!(err.contains("already in use") && err.contains("--prometheus-port"), "{err}");
        let preferred = PrometheusOptions { port: PrometheusPort::Preferred(port), ..PrometheusOptions::default() };
        let addr = preferred.pick_addr().unwrap();
        assert_ne!(addr.port(), port);
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    }
}
