//! The pingora server around the proxy: its listeners, worker threads and downstream keep-alive
//! (`[server]`), and how it stops (`[shutdown]`).

use std::net::SocketAddr;

use pingora::server::configuration::ServerConf;
use platform::config::ConfigError;

use crate::config::file::{ServerSection, ShutdownSection};
use crate::config::values::{in_range, socket_addr};
use crate::request_limits::RequestLimits;

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The proxy listener, where the ALB sends `/tasks` (`GATEWAY_LISTEN`).
    pub listen: SocketAddr,
    /// The admin listener: `/metrics`, `/metrics/task-svc`, `/ready` (`METRICS_ADDR`).
    pub metrics: SocketAddr,
    /// Proxy worker threads; the file's 0 is resolved here to one per CPU.
    pub threads: usize,
    /// How long an idle downstream keep-alive connection is kept, whole seconds (pingora's unit).
    pub keepalive_timeout_secs: u64,
    /// The limits on one request's head and body (`max_header_count` ... `max_body_bytes`).
    pub limits: RequestLimits,
}

impl TryFrom<&ServerSection> for ServerSettings {
    type Error = ConfigError;

    fn try_from(s: &ServerSection) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: socket_addr("[server] listen", &s.listen)?,
            metrics: socket_addr("[server] metrics", &s.metrics)?,
            threads: match s.threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            // ALB idle timeouts range 1..=4000 s; the gateway's must be able to exceed any of them.
            keepalive_timeout_secs: in_range("[server] keepalive_timeout_secs", s.keepalive_timeout_secs, 1..=4001)?,
            limits: RequestLimits::try_from(s)?,
        })
    }
}

/// `[shutdown]`, validated: on SIGTERM pingora stops accepting, lets in-flight requests run for
/// `grace_period_secs`, then gives its runtimes `graceful_shutdown_timeout_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    pub grace_period_secs: u64,
    pub graceful_shutdown_timeout_secs: u64,
}

/// The longest stop the ECS `stopTimeout` allows (120 s at most) with room for the process to exit.
const MAX_STOP_SECS: u64 = 110;

impl TryFrom<&ShutdownSection> for ShutdownSettings {
    type Error = ConfigError;

    fn try_from(s: &ShutdownSection) -> Result<Self, ConfigError> {
        let grace = in_range("[shutdown] grace_period_secs", s.grace_period_secs, 0..=100)?;
        let last = in_range("[shutdown] graceful_shutdown_timeout_secs", s.graceful_shutdown_timeout_secs, 1..=100)?;
        if grace + last > MAX_STOP_SECS {
            return Err(ConfigError::new(
                "[shutdown] grace_period_secs",
                format!(
                    "grace_period_secs + graceful_shutdown_timeout_secs must stay below ECS stopTimeout (at most {MAX_STOP_SECS} s)"
                ),
            ));
        }
        Ok(Self { grace_period_secs: grace, graceful_shutdown_timeout_secs: last })
    }
}

impl ServerSettings {
    /// pingora's server configuration with our threads and shutdown timings (pingora's default
    /// grace, 300 s, exceeds any ECS `stopTimeout`).
    pub fn pingora_conf(&self, shutdown: &ShutdownSettings) -> ServerConf {
        ServerConf {
            threads: self.threads,
            grace_period_seconds: Some(shutdown.grace_period_secs),
            graceful_shutdown_timeout_seconds: Some(shutdown.graceful_shutdown_timeout_secs),
            ..Default::default()
        }
    }
}
