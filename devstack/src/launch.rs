//! The one launcher of the system's binaries: typed settings per binary produce its command
//! line, environment and config file in one place, and [`Launch`] starts the process and waits
//! until it is ready. The run command ([`crate::stack`]), the bench, the gateway tests and the
//! process tests all start auth-svc, task-svc and the gateway through here, so a new setting is
//! a change to one struct.
//!
//! Settings map to the variables in the README's "Configuration" table and to the gateway's
//! `sidecar.toml` (written from [`gateway::config::SidecarFile`], the schema the gateway reads).
//! A process that is not one of the three is a plain [`Launch::new`] (moto, the bench's
//! helpers) or a settings struct of its own with a `launch` method ([`PrometheusSettings`]).

mod command;
mod keyring;
pub mod prometheus;
mod running;
mod service;
mod sidecar;
mod signing;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Result, bail};
pub use command::{Env, Launch, Probe};
pub use keyring::{AwsEndpoint, KeyringSource};
pub use prometheus::{Job, PrometheusSettings, ScrapeTarget};
pub use running::RunningService;
pub use service::{AuthSvcSettings, ClientRate, ServiceSettings, TaskSvcSettings, Throttles};
pub use sidecar::GatewaySettings;

/// The command that builds every binary the launcher starts, with the workspace's single
/// feature resolution (see docs/local-run.md, "One build").
pub const BUILD_COMMAND: &str = "cargo build --workspace --bins";

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The directory holding auth-svc, task-svc and gateway (one build profile's output).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$TASKMGMT_BIN_DIR`, else the running executable's directory ([`crate::process::bin_dir`]).
    pub fn locate() -> Result<Self> {
        Ok(Self::new(crate::process::bin_dir()?))
    }

    /// The path of binary `name`; an error saying how to build it when it is missing.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.exists() {
            bail!(
                "{name} not found in {}: build the binaries first with `{BUILD_COMMAND}` (add --release for a release run)",
                self.dir.display()
            );
        }
        Ok(path)
    }
}

/// `LOG_FORMAT` and `RUST_LOG` of a child. `None` leaves the variable as the parent has it
/// (the run command passes the user's choice through).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logging {
    pub format: Option<LogFormat>,
    /// `RUST_LOG`, e.g. `info`.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Compact,
    /// JSON lines, as on ECS (CloudWatch).
    Json,
}

impl Logging {
    /// JSON lines, as the ECS task definitions set.
    pub fn json() -> Self {
        Self { format: Some(LogFormat::Json), filter: None }
    }
}
