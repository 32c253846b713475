//! The gateway's configuration: `sidecar.toml` as written ([`SidecarFile`], one struct per
//! table) with the per-task environment overrides applied ([`environment`]), then each section
//! validated into the settings of the component that uses it. Each conversion lives beside its
//! component:
//!
//! | section | settings | file |
//! |---|---|---|
//! | `[server]`, `[shutdown]` | [`ServerSettings`], [`ShutdownSettings`] | `server.rs` |
//! | `[upstream]` | [`UpstreamSettings`] | `upstream.rs` |
//! | `[auth]` | [`AuthSettings`] | `auth_client.rs` |
//! | `[jwt]` | [`JwtSettings`] | `authenticator.rs` |
//! | `[revocation]` | [`RevocationSettings`] | `revocation_list.rs` |
//! | `[cache]` | [`TokenCacheSettings`] | `token_cache.rs` |
//! | `[routes]` | [`PublicRoutes`] | `routes.rs` |
//! | `[rate_limit]` | [`RateLimitSettings`] | `rate_limit.rs` |
//! | `[access_log]` | [`AccessLogSettings`] | `access_log.rs` |
//!
//! [`Config`] is those settings plus the checks that relate keys of different sections. Errors
//! name the key as `[section] key` (or the environment variable it came from) and never echo a
//! secret. Adding a key: its field in the section ([`file`]), its check in the section's
//! conversion, `sidecar.toml` and `docs/gateway.md`.

pub(crate) mod environment;
pub mod file;
#[cfg(test)]
mod tests;
pub(crate) mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use platform::config::{ConfigError, Source, raw};
use platform::keyring::KeyringConfig;

pub use file::*;

use crate::access_log::AccessLogSettings;
use crate::auth_client::AuthSettings;
use crate::authenticator::JwtSettings;
use crate::rate_limit::RateLimitSettings;
use crate::revocation_list::RevocationSettings;
use crate::routes::PublicRoutes;
use crate::server::{ServerSettings, ShutdownSettings};
use crate::token_cache::TokenCacheSettings;
use crate::upstream::UpstreamSettings;

/// The validated configuration: one field per section of `sidecar.toml`, plus the keyring
/// source, which only the environment names (secrets never go in the file).
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub jwt: JwtSettings,
    pub revocation: RevocationSettings,
    pub cache: TokenCacheSettings,
    pub shutdown: ShutdownSettings,
    pub routes: PublicRoutes,
    pub rate_limit: RateLimitSettings,
    pub access_log: AccessLogSettings,
    /// `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`) or `JWT_SECRET_ARN`.
    pub keyring: KeyringConfig,
}

/// Where the config file is: `--config PATH`, else `SIDECAR_CONFIG` (empty is unset), else
/// `./sidecar.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    pub path: PathBuf,
    /// Named by the flag or the variable: then a missing file is an error. A missing
    /// `./sidecar.toml` means "all defaults".
    pub named: bool,
}

impl ConfigPath {
    /// The path from the `--config` flag (`None` when absent) and the environment.
    pub fn locate(flag: Option<&Path>, env: &dyn Source) -> Self {
        match (flag, raw(env, "SIDECAR_CONFIG")) {
            (Some(p), _) => Self { path: p.to_owned(), named: true },
            (None, Some(p)) => Self { path: PathBuf::from(p), named: true },
            (None, None) => Self { path: PathBuf::from("sidecar.toml"), named: false },
        }
    }
}

impl Config {
    /// Reads the file at `at` and applies the environment.
    pub fn load(at: &ConfigPath, env: &dyn Source) -> Result<Self, ConfigError> {
        let key = at.path.display().to_string();
        let text = match std::fs::read_to_string(&at.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !at.named => String::new(),
            Err(e) => return Err(ConfigError::new(&key, format!("cannot read config file: {e}"))),
        };
        let file = SidecarFile::from_toml(&text).map_err(|e| ConfigError::new(&key, e))?;
        Self::from_file(file, env)
    }

    /// Validates `file` with the environment's overrides applied; the keyring comes from the
    /// environment alone.
    pub fn from_file(mut file: SidecarFile, env: &dyn Source) -> Result<Self, ConfigError> {
        let applied = environment::apply(&mut file, env);
        Self::validate(&file, env).map_err(|e| applied.name_source(e))
    }

    fn validate(f: &SidecarFile, env: &dyn Source) -> Result<Self, ConfigError> {
        let config = Self {
            server: ServerSettings::try_from(&f.server)?,
            upstream: UpstreamSettings::try_from(&f.upstream)?,
            auth: AuthSettings::try_from(&f.auth)?,
            jwt: JwtSettings::try_from(&f.jwt)?,
            revocation: RevocationSettings::try_from(&f.revocation)?,
            cache: TokenCacheSettings::try_from(&f.cache)?,
            shutdown: ShutdownSettings::try_from(&f.shutdown)?,
            routes: PublicRoutes::try_from(&f.routes)?,
            rate_limit: RateLimitSettings::try_from(&f.rate_limit)?,
            access_log: AccessLogSettings::try_from(&f.access_log)?,
            keyring: KeyringConfig::for_gateway(env, &f.auth.url)?,
        };
        config.check_across_sections()?;
        Ok(config)
    }

    /// The checks that relate keys of different sections (each section's own rules are in its
    /// conversion).
    fn check_across_sections(&self) -> Result<(), ConfigError> {
        // A TCP upstream that is the gateway's own listener: every request would be forwarded
        // to the gateway again, without end.
        if self.upstream.socket.is_none() && values::same_local_socket(self.server.listen, self.upstream.addr) {
            return Err(ConfigError::new(
                "[upstream] addr",
                format!(
                    "{} is the gateway's own listener ([server] listen {})",
                    self.upstream.addr, self.server.listen
                ),
            ));
        }
        if let Some(task_metrics) = self.upstream.metrics
            && values::same_local_socket(self.server.metrics, task_metrics)
        {
            return Err(ConfigError::new(
                "[upstream] metrics",
                format!(
                    "{task_metrics} is the gateway's own metrics listener ([server] metrics {}), not task-svc's",
                    self.server.metrics
                ),
            ));
        }
        Ok(())
    }

    /// Only the admin address, for `gateway healthcheck`: from the file and `METRICS_ADDR`, so
    /// the probe works where the rest of the configuration (secrets) is not visible to it. A
    /// file or value it cannot read gives the default port on loopback.
    pub fn metrics_addr(at: &ConfigPath, env: &dyn Source) -> SocketAddr {
        let mut file = SidecarFile::read(&at.path).unwrap_or_default();
        environment::apply(&mut file, env);
        values::socket_addr("[server] metrics", &file.server.metrics)
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9100)))
    }
}
