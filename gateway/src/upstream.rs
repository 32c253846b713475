//! task-svc as pingora's peer (`[upstream]`): where it is (TCP or its Unix socket), how long each
//! step of a request to it may take, and how long an idle pooled connection to it is kept.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};
use platform::config::ConfigError;

use crate::config::file::UpstreamSection;
use crate::config::values::{in_range, millis, secs, socket_addr, socket_addr_or_off, unix_socket};

/// `[upstream]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// task-svc over TCP (`UPSTREAM_ADDR`), used when `socket` is `None`.
    pub addr: SocketAddr,
    /// task-svc's Unix domain socket (`UPSTREAM_SOCKET`); when set, requests go there.
    pub socket: Option<PathBuf>,
    /// task-svc's metrics listener for `/metrics/task-svc`; `None` when the pass-through is off.
    pub metrics: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub total_connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// How long a pooled connection to task-svc may stay idle before the gateway closes it.
    pub idle_timeout: Duration,
    /// Idle connections kept per proxy thread (pingora's `upstream_keepalive_pool_size`, a
    /// server-wide setting: see `build_server`).
    pub keepalive_pool_size: usize,
}

impl TryFrom<&UpstreamSection> for UpstreamSettings {
    type Error = ConfigError;

    fn try_from(s: &UpstreamSection) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: socket_addr("[upstream] addr", &s.addr)?,
            socket: unix_socket("[upstream] socket", &s.socket)?,
            metrics: socket_addr_or_off("[upstream] metrics", &s.metrics)?,
            connect_timeout: millis("[upstream] connect_timeout_ms", s.connect_timeout_ms, 1..=60_000)?,
            total_connect_timeout: millis(
                "[upstream] total_connect_timeout_ms",
                s.total_connect_timeout_ms,
                1..=60_000,
            )?,
            read_timeout: millis("[upstream] read_timeout_ms", s.read_timeout_ms, 1..=600_000)?,
            write_timeout: millis("[upstream] write_timeout_ms", s.write_timeout_ms, 1..=600_000)?,
            idle_timeout: secs("[upstream] idle_timeout_secs", s.idle_timeout_secs, 1..=3600)?,
            // At most 100,000: the cast is exact.
            keepalive_pool_size: in_range("[upstream] keepalive_pool_size", s.keepalive_pool_size, 1..=100_000)?
                as usize,
        })
    }
}

impl UpstreamSettings {
    /// task-svc as pingora's peer with every timeout set: pingora sets none by default, so a
    /// hung task-svc would hold requests forever and an idle pooled connection would be kept
    /// until task-svc closes it. Fails when the socket path is not UTF-8.
    pub fn peer(&self) -> pingora::Result<HttpPeer> {
        let mut peer = match &self.socket {
            Some(path) => {
                let path =
                    path.to_str().ok_or_else(|| Error::explain(ErrorType::SocketError, "socket path is not UTF-8"))?;
                HttpPeer::new_uds(path, false, String::new())?
            }
            None => HttpPeer::new(self.addr, false, String::new()),
        };
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.total_connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.write_timeout = Some(self.write_timeout);
        peer.options.idle_timeout = Some(self.idle_timeout);
        Ok(peer)
    }

    /// Where requests go, for the start-up log line: the socket path or the address.
    pub fn target(&self) -> String {
        self.socket.as_ref().map_or_else(|| self.addr.to_string(), |p| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_carries_every_timeout_of_the_section() {
        let section = UpstreamSection { idle_timeout_secs: 7, read_timeout_ms: 1500, ..UpstreamSection::default() };
        let peer = UpstreamSettings::try_from(&section).unwrap().peer().unwrap();
        assert_eq!(peer.options.idle_timeout, Some(Duration::from_secs(7)));
        assert_eq!(peer.options.read_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(peer.options.connection_timeout, Some(Duration::from_millis(1000)));
        let default = UpstreamSettings::try_from(&UpstreamSection::default()).unwrap();
        assert_eq!(default.idle_timeout, Duration::from_secs(60));
        assert_eq!(default.target(), "127.0.0.1:3001");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (section, key) in [
            (UpstreamSection { idle_timeout_secs: 0, ..UpstreamSection::default() }, "[upstream] idle_timeout_secs"),
            (UpstreamSection { idle_timeout_secs: 3601, ..UpstreamSection::default() }, "[upstream] idle_timeout_secs"),
            (UpstreamSection { connect_timeout_ms: 0, ..UpstreamSection::default() }, "[upstream] connect_timeout_ms"),
            (
                UpstreamSection { keepalive_pool_size: 0, ..UpstreamSection::default() },
                "[upstream] keepalive_pool_size",
            ),
            (UpstreamSection { socket: "task.sock".into(), ..UpstreamSection::default() }, "[upstream] socket"),
        ] {
            assert_eq!(UpstreamSettings::try_from(&section).unwrap_err().key, key);
        }
    }

    #[test]
    fn a_unix_socket_wins_over_the_address() {
        let section = UpstreamSection { socket: "/run/task-svc/task-svc.sock".into(), ..UpstreamSection::default() };
        let settings = UpstreamSettings::try_from(&section).unwrap();
        assert_eq!(settings.target(), "/run/task-svc/task-svc.sock");
        assert!(settings.peer().is_ok());
        // Written out only when set: a file for an older gateway does not gain the key.
        assert!(!crate::config::SidecarFile::default().to_toml().unwrap().contains("socket"));
    }
}
