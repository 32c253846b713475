//! task-svc configuration, read once from the environment at start-up. There is no JWT setting:
//! task-svc never sees a token, only the identity header its gateway sets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use platform::config::{self, ConfigError, Source};
use platform::db::DbConfig;

#[derive(Debug)]
pub struct Config {
    pub db: DbConfig,
    /// Loopback by default: only the gateway in the same task may reach task-svc.
    pub listen: SocketAddr,
    /// `UNIX_SOCKET_PATH`: also serve on this Unix domain socket (absolute path), for a gateway
    /// in the same task (on ECS a volume both containers mount). The TCP listener stays: health
    /// checks and a gateway configured for TCP use it. `None` when unset or empty.
    pub unix_socket: Option<PathBuf>,
    /// `METRICS_ADDR`; `off` disables the metrics listener.
    pub metrics: Option<SocketAddr>,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

pub const DEFAULT_PORT: u16 = 3001;
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9102";

impl Config {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let bind: IpAddr = config::parse_or(src, "BIND_ADDR", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port: u16 = config::parse_or(src, "PORT", DEFAULT_PORT)?;
        let metrics = config::address_or_off(src, "METRICS_ADDR", DEFAULT_METRICS_ADDR)?;
        let unix_socket = match config::raw(src, "UNIX_SOCKET_PATH").filter(|p| !p.trim().is_empty()) {
            None => None,
            Some(p) if p.starts_with('/') && p.len() < 108 => Some(PathBuf::from(p)),
            Some(_) => {
                return Err(ConfigError::new(
                    "UNIX_SOCKET_PATH",
                    "must be an absolute path shorter than 108 bytes (the sockaddr_un limit)",
                ));
            }
        };
        Ok(Self {
            db: DbConfig::from_source(src, "task-svc")?,
            listen: SocketAddr::new(bind, port),
            unix_socket,
            metrics,
            request_timeout: config::seconds_or(src, "REQUEST_TIMEOUT_SECS", 10, 1..=300)?,
            shutdown_grace: config::seconds_or(src, "SHUTDOWN_GRACE_SECS", 20, 1..=110)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn binds_loopback_by_default() {
        let env: HashMap<String, String> = [("DATABASE_URL".to_owned(), "postgres://u@127.0.0.1/db".to_owned())].into();
        let cfg = Config::from_source(&env).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(cfg.metrics, Some("127.0.0.1:9102".parse().unwrap()));
        assert_eq!(cfg.unix_socket, None, "TCP only unless asked");
    }

    #[test]
    fn unix_socket_path_must_be_absolute_and_fit_sockaddr_un() {
        let env = |path: &str| -> HashMap<String, String> {
            [
                ("DATABASE_URL".to_owned(), "postgres://u@127.0.0.1/db".to_owned()),
                ("UNIX_SOCKET_PATH".to_owned(), path.to_owned()),
            ]
            .into()
        };
        let cfg = Config::from_source(&env("/run/task-svc/task-svc.sock")).unwrap();
        assert_eq!(cfg.unix_socket, Some(PathBuf::from("/run/task-svc/task-svc.sock")));
        assert_eq!(Config::from_source(&env("")).unwrap().unix_socket, None);
        assert_eq!(Config::from_source(&env("relative.sock")).unwrap_err().key, "UNIX_SOCKET_PATH");
        let long = format!("/{}", "x".repeat(120));
        assert_eq!(Config::from_source(&env(&long)).unwrap_err().key, "UNIX_SOCKET_PATH");
    }

    #[test]
    fn bad_bind_address_is_named() {
        let env: HashMap<String, String> = [
            ("DATABASE_URL".to_owned(), "postgres://u@127.0.0.1/db".to_owned()),
            ("BIND_ADDR".to_owned(), "localhost:80".to_owned()),
        ]
        .into();
        assert_eq!(Config::from_source(&env).unwrap_err().key, "BIND_ADDR");
    }
}
