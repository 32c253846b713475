//! Checks of one value of `sidecar.toml`, used by each section's conversion into its component's
//! settings. `key` is the key as errors name it, `[section] key` (the environment variable instead
//! when the value came from one, see [`super::environment`]).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use platform::config::ConfigError;

/// `v` when it lies in `range`.
pub fn in_range(key: &str, v: u64, range: RangeInclusive<u64>) -> Result<u64, ConfigError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(key, format!("{v} is out of range {}..={}", range.start(), range.end())))
    }
}

/// Whole seconds within `range`.
pub fn secs(key: &str, v: u64, range: RangeInclusive<u64>) -> Result<Duration, ConfigError> {
    in_range(key, v, range).map(Duration::from_secs)
}

/// Milliseconds within `range`.
pub fn millis(key: &str, v: u64, range: RangeInclusive<u64>) -> Result<Duration, ConfigError> {
    in_range(key, v, range).map(Duration::from_millis)
}

/// At least 1.
pub fn at_least_one(key: &str, v: u32) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(v).ok_or_else(|| ConfigError::new(key, "must be at least 1"))
}

/// An `ip:port` socket address.
pub fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|e| ConfigError::new(key, format!("invalid socket address {value:?}: {e}")))
}

/// Like [`socket_addr`], but `off` (any case) means "disabled".
pub fn socket_addr_or_off(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    socket_addr(key, value).map(Some)
}

/// A Unix socket path; empty means none. Absolute, and short enough for `sockaddr_un`
/// (108 bytes with the terminating NUL).
pub fn unix_socket(key: &str, value: &str) -> Result<Option<PathBuf>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with('/') || value.len() >= 108 {
        return Err(ConfigError::new(key, format!("{value:?} must be an absolute path shorter than 108 bytes")));
    }
    Ok(Some(PathBuf::from(value)))
}

/// Whether two addresses certainly name the same socket on this host: the same port, and the
/// same IP, or one of them the wildcard address (`0.0.0.0`/`::`, every local IP) and the other a
/// loopback or wildcard address. Another local IP (an ENI's) is not detected: the gateway cannot
/// tell it from a remote host's without asking the kernel.
pub fn same_local_socket(a: SocketAddr, b: SocketAddr) -> bool {
    let local = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.ip().is_unspecified() && local(b.ip()))
            || (b.ip().is_unspecified() && local(a.ip())))
}
