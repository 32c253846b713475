//! Reading typed configuration from the environment, failing fast with the name of the bad key.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use crate::Secret;

/// A configuration error that names the offending key and never echoes a secret value.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        Self { key: key.to_owned(), reason: reason.into() }
    }
}

/// Where configuration values come from. The process environment in production; a map in tests.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

/// A set value, treating empty strings as unset (ECS task definitions often carry `""`).
pub fn raw(src: &dyn Source, key: &str) -> Option<String> {
    src.get(key).filter(|v| !v.trim().is_empty())
}

pub fn required_string(src: &dyn Source, key: &str) -> Result<String, ConfigError> {
    raw(src, key).ok_or_else(|| ConfigError::new(key, "is required but not set"))
}

pub fn required_secret(src: &dyn Source, key: &str) -> Result<Secret, ConfigError> {
    required_string(src, key).map(Secret::new)
}

pub fn optional_secret(src: &dyn Source, key: &str) -> Option<Secret> {
    raw(src, key).map(Secret::new)
}

/// Parses `key` if set, `default` otherwise. The error names the key and the value (never use
/// this for secrets).
pub fn parse_or<T>(src: &dyn Source, key: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw(src, key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| ConfigError::new(key, format!("invalid value {v:?}: {e}"))),
    }
}

/// A duration given in whole seconds, within `range` (inclusive).
pub fn seconds_or(
    src: &dyn Source,
    key: &str,
    default_secs: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let secs: u64 = parse_or(src, key, default_secs)?;
    if !range.contains(&secs) {
        return Err(ConfigError::new(
            key,
            format!("{secs} is out of range {}..={} seconds", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// A socket address, or `None` when the value is `off` (a listener that can be disabled).
pub fn address_or_off(src: &dyn Source, key: &str, default: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let value = raw(src, key).unwrap_or_else(|| default.to_owned());
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.trim().parse().map(Some).map_err(|e| ConfigError::new(key, format!("invalid address {value:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn src(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parse_errors_name_the_key() {
        let err = parse_or::<u16>(&src(&[("PORT", "eighty")]), "PORT", 3000).unwrap_err();
        assert_eq!(err.key, "PORT");
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(parse_or::<u16>(&src(&[("PORT", "  ")]), "PORT", 3000).unwrap(), 3000);
        assert!(required_string(&src(&[("X", "")]), "X").is_err());
    }

    #[test]
    fn addresses_can_be_turned_off() {
        assert_eq!(address_or_off(&src(&[]), "M", "127.0.0.1:9").unwrap(), Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(address_or_off(&src(&[("M", "off")]), "M", "127.0.0.1:9").unwrap(), None);
        assert_eq!(address_or_off(&src(&[("M", "nine")]), "M", "127.0.0.1:9").unwrap_err().key, "M");
    }

    #[test]
    fn seconds_out_of_range_are_refused() {
        let err = seconds_or(&src(&[("T", "0")]), "T", 5, 1..=60).unwrap_err();
        assert!(err.reason.contains("out of range"));
        assert_eq!(seconds_or(&src(&[]), "T", 5, 1..=60).unwrap(), Duration::from_secs(5));
    }
}
