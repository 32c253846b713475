//! Reading one value: the environment variable when set (an empty value is unset), else the
//! file's key; errors name whichever of the two the value came from.

use std::net::SocketAddr;

use platform::config::{ConfigError, Source, raw};

pub(super) fn in_range(key: &str, v: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(key, format!("{v} is out of range {}..={}", range.start(), range.end())))
    }
}

/// The value to use and the key it came from: `env_key` when set (non-empty), else the file's.
fn env_or_file<'k>(env: &dyn Source, env_key: &'k str, file_key: &'k str, file_value: &str) -> (&'k str, String) {
    match raw(env, env_key) {
        Some(v) => (env_key, v),
        None => (file_key, file_value.to_owned()),
    }
}

pub(super) fn addr(
    env: &dyn Source,
    env_key: &str,
    file_key: &str,
    file_value: &str,
) -> Result<SocketAddr, ConfigError> {
    let (key, value) = env_or_file(env, env_key, file_key, file_value);
    value.trim().parse().map_err(|e| ConfigError::new(key, format!("invalid socket address {value:?}: {e}")))
}

/// A Unix socket path from `env_key` or the file; empty means none. Absolute, and short enough
/// for `sockaddr_un` (108 bytes with the terminating NUL).
pub(super) fn unix_socket(
    env: &dyn Source,
    env_key: &str,
    file_key: &str,
    file_value: &str,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let (key, value) = env_or_file(env, env_key, file_key, file_value);
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with('/') || value.len() >= 108 {
        return Err(ConfigError::new(key, format!("{value:?} must be an absolute path shorter than 108 bytes")));
    }
    Ok(Some(std::path::PathBuf::from(value)))
}

/// Like [`addr`], but `off` (any case) means "disabled".
pub(super) fn addr_or_off(
    env: &dyn Source,
    env_key: &str,
    file_key: &str,
    file_value: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let (_, value) = env_or_file(env, env_key, file_key, file_value);
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    addr(env, env_key, file_key, file_value).map(Some)
}

/// `http://host[:port][/]` → (host, port). Only plain HTTP: auth-svc is reached inside the VPC.
pub(super) fn parse_http_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?} must start with http://"))?;
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(format!("{url:?} must be a bare origin, e.g. http://host:3000"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h.to_owned(), p.parse::<u16>().map_err(|e| format!("invalid port in {url:?}: {e}"))?)
        }
        _ => (rest.to_owned(), 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host, port))
}
