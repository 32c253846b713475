//! Prometheus (the server of the Debian `prometheus` package) as a child of the launcher: its
//! `prometheus.yml` is written from typed structs ([`Config`]) serialised with `serde_json`
//! (JSON is YAML 1.2, and Prometheus reads it as such: `promtool check config` in the tests
//! says so; no YAML serialiser to keep, `serde_yaml` being unmaintained), and the process is
//! started with its own data directory and listen address.
//!
//! The scrape jobs carry the names of `ecs/prometheus/prometheus.yml` (`gateway`, `task-svc`,
//! `auth-svc`), so the rule files of `ecs/prometheus/rules/` apply unchanged. Targets are
//! static (there is no Cloud Map DNS locally): one per process, each with the `task_id` label
//! that the ECS configuration's relabelling takes from the SRV record.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Serialize, Serializer};

use super::{Launch, Probe};

/// A scrape job of `ecs/prometheus/prometheus.yml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// A gateway's metrics listener, `/metrics`.
    Gateway,
    /// task-svc's own metrics, passed through by its gateway at `/metrics/task-svc`.
    TaskSvc,
    /// An auth-svc metrics listener, `/metrics`.
    AuthSvc,
}

impl Job {
    /// The `job_name`, as the rules match it.
    pub fn name(self) -> &'static str {
        match self {
            Job::Gateway => "gateway",
            Job::TaskSvc => "task-svc",
            Job::AuthSvc => "auth-svc",
        }
    }

    /// The path Prometheus scrapes.
    pub fn metrics_path(self) -> &'static str {
        match self {
            Job::Gateway | Job::AuthSvc => "/metrics",
            Job::TaskSvc => gateway::admin::TASK_SVC_METRICS_PATH,
        }
    }
}

/// One process to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub job: Job,
    /// Its metrics listener (for [`Job::TaskSvc`], the gateway's, which passes task-svc's through).
    pub addr: SocketAddr,
    /// The `task_id` label: the local name of the ECS task (`task-1`, `auth-2`).
    pub task_id: String,
}

/// The local Prometheus server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusSettings {
    /// The `prometheus` binary.
    pub program: PathBuf,
    /// `--web.listen-address` (UI and HTTP API).
    pub listen: SocketAddr,
    /// Where `prometheus.yml` is written (`--config.file`).
    pub config_path: PathBuf,
    /// `--storage.tsdb.path`.
    pub data_dir: PathBuf,
    /// Rule files, loaded as they are (`rule_files`, absolute paths).
    pub rule_files: Vec<PathBuf>,
    /// `global.scrape_interval`; also the scrape timeout.
    pub scrape_interval: Duration,
    /// `global.evaluation_interval`: how often rules and alerts are evaluated.
    pub evaluation_interval: Duration,
    /// `global.external_labels`.
    pub external_labels: BTreeMap<String, String>,
    pub targets: Vec<ScrapeTarget>,
    /// `--log.level` (`debug`, `info`, `warn`, `error`).
    pub log_level: String,
}

impl PrometheusSettings {
    /// `prometheus.yml` for these settings: one scrape job per [`Job`] that has targets, in
    /// the order gateway, task-svc, auth-svc, each target a static config of its own with its
    /// `task_id` label.
    pub fn config(&self) -> Config {
        let mut jobs: BTreeMap<Job, Vec<StaticConfig>> = BTreeMap::new();
        for t in &self.targets {
            jobs.entry(t.job).or_default().push(StaticConfig {
                targets: vec![t.addr.to_string()],
                labels: BTreeMap::from([("task_id".to_owned(), t.task_id.clone())]),
            });
        }
        Config {
            global: Global {
                scrape_interval: PromDuration(self.scrape_interval),
                scrape_timeout: PromDuration(self.scrape_interval),
                evaluation_interval: PromDuration(self.evaluation_interval),
                external_labels: self.external_labels.clone(),
            },
            rule_files: self.rule_files.clone(),
            scrape_configs: jobs
                .into_iter()
                .map(|(job, static_configs)| ScrapeConfig {
                    job_name: job.name().to_owned(),
                    metrics_path: job.metrics_path().to_owned(),
                    static_configs,
                })
                .collect(),
        }
    }

    /// Writes `prometheus.yml` and creates the data directory; returns the process, ready once
    /// `GET /-/ready` answers 200.
    pub fn launch(&self, name: &str) -> Result<Launch> {
        // JSON, which is valid YAML (see the module's docs); a YAML comment may precede it.
        let yaml = serde_json::to_string_pretty(&self.config()).context("serialising prometheus.yml")?;
        let header = "# Written by devstack::launch::PrometheusSettings for the local stack (docs/local-run.md, \"Prometheus\").\n";
        std::fs::write(&self.config_path, format!("{header}{yaml}\n"))
            .with_context(|| format!("could not write {}", self.config_path.display()))?;
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("could not create {}", self.data_dir.display()))?;
        Ok(Launch::new(name, &self.program)
            .arg(format!("--config.file={}", self.config_path.display()))
            .arg(format!("--storage.tsdb.path={}", self.data_dir.display()))
            .arg(format!("--web.listen-address={}", self.listen))
            .arg(format!("--log.level={}", self.log_level))
            .ready(vec![Probe::http(self.listen, "/-/ready")]))
    }
}

/// The `*.yml` files of `dir`, sorted; an error when there are none.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("could not read the rule files in {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no rule files (*.yml) in {}", dir.display());
    }
    Ok(files)
}

/// The part of Prometheus' configuration file the local stack uses
/// (<https://prometheus.io/docs/prometheus/latest/configuration/configuration/>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub global: Global,
    pub rule_files: Vec<PathBuf>,
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// `global:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Global {
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    pub evaluation_interval: PromDuration,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
}

/// One entry of `scrape_configs:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub metrics_path: String,
    pub static_configs: Vec<StaticConfig>,
}

/// One entry of `static_configs:`: addresses (`host:port`) and labels added to their series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A duration in Prometheus' notation: whole seconds as `5s`, anything else in milliseconds
/// (`1500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromDuration(pub Duration);

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        if d.subsec_millis() == 0 {
            s.serialize_str(&format!("{}s", d.as_secs()))
        } else {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::launch::loopback;

    fn settings(dir: &Path) -> PrometheusSettings {
        let rules = crate::stack::repo_root().join("ecs/prometheus/rules");
        PrometheusSettings {
            program: PathBuf::from("prometheus"),
            listen: loopback(9090),
            config_path: dir.join("prometheus.yml"),
            data_dir: dir.join("prometheus"),
            rule_files: rule_files(&rules).unwrap(),
            scrape_interval: Duration::from_secs(2),
            evaluation_interval: Duration::from_millis(1500),
            external_labels: BTreeMap::from([("stack".to_owned(), "task-mgmt-local".to_owned())]),
            targets: vec![
                ScrapeTarget { job: Job::AuthSvc, addr: loopback(9101), task_id: "auth-1".into() },
                ScrapeTarget { job: Job::Gateway, addr: loopback(9100), task_id: "task-1".into() },
                ScrapeTarget { job: Job::TaskSvc, addr: loopback(9100), task_id: "task-1".into() },
                ScrapeTarget { job: Job::Gateway, addr: loopback(9200), task_id: "task-2".into() },
            ],
            log_level: "warn".into(),
        }
    }

    #[test]
    fn the_config_has_the_ecs_job_names_and_paths() {
        let dir = std::env::temp_dir().join(format!("prometheus-config-{}", std::process::id()));
        let config = settings(&dir).config();
        let jobs: Vec<(&str, &str, usize)> = config
            .scrape_configs
            .iter()
            .map(|j| (j.job_name.as_str(), j.metrics_path.as_str(), j.static_configs.len()))
            .collect();
        assert_eq!(
            jobs,
            [("gateway", "/metrics", 2), ("task-svc", "/metrics/task-svc", 1), ("auth-svc", "/metrics", 1)]
        );
        assert_eq!(config.scrape_configs[0].static_configs[1].targets, ["127.0.0.1:9200"]);
        assert_eq!(config.scrape_configs[0].static_configs[1].labels["task_id"], "task-2");
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["global"]["scrape_interval"], "2s");
        assert_eq!(json["global"]["evaluation_interval"], "1500ms");
        assert!(config.rule_files.iter().any(|f| f.ends_with("alerts.yml")), "{:?}", config.rule_files);
    }

    /// The written file is one Prometheus accepts, rule files included (promtool comes with
    /// the Debian `prometheus` package, which the test set-up installs).
    #[test]
    fn promtool_accepts_the_written_config() {
        let dir = std::env::temp_dir().join(format!("prometheus-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = settings(&dir);
        let launch = settings.launch("prometheus").unwrap();
        assert!(launch.args.contains(&"--web.listen-address=127.0.0.1:9090".to_owned()), "{:?}", launch.args);
        assert_eq!(launch.ready, vec![Probe::http(loopback(9090), "/-/ready")]);
        let out = std::process::Command::new("promtool")
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml"))
            .output()
            .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        let found = format!("SUCCESS: {} rule files found", settings.rule_files.len());
        assert!(text.contains(&found), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_without_rules_is_an_error() {
        let err = rule_files(Path::new("/nonexistent-rules")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-rules"), "{err:#}");
    }
}
