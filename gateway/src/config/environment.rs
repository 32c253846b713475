//! The environment variables that override one key of `sidecar.toml` each: the values ECS sets
//! per task (the header of `sidecar.toml` lists them). They are applied to the file before its
//! sections are validated, so every key is checked in one place whatever its source, and an
//! error names the variable when the bad value came from one. An empty variable is unset, as for
//! every configuration variable (ECS task definitions carry `""`).

use platform::config::{ConfigError, Source, raw};

use super::file::SidecarFile;

/// One override: the variable, the key it replaces (as errors name it) and where its value goes.
struct Override {
    var: &'static str,
    key: &'static str,
    set: fn(&mut SidecarFile, String),
}

impl std::fmt::Debug for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.var, self.key)
    }
}

static OVERRIDES: [Override; 7] = [
    Override { var: "GATEWAY_LISTEN", key: "[server] listen", set: |f, v| f.server.listen = v },
    Override { var: "METRICS_ADDR", key: "[server] metrics", set: |f, v| f.server.metrics = v },
    Override { var: "UPSTREAM_ADDR", key: "[upstream] addr", set: |f, v| f.upstream.addr = v },
    Override { var: "UPSTREAM_SOCKET", key: "[upstream] socket", set: |f, v| f.upstream.socket = v },
    Override { var: "UPSTREAM_METRICS_ADDR", key: "[upstream] metrics", set: |f, v| f.upstream.metrics = v },
    Override { var: "AUTH_SERVICE_URL", key: "[auth] url", set: |f, v| f.auth.url = v },
    Override {
        var: "RATE_LIMIT_PEERS_DNS_NAME",
        key: "[rate_limit] peers_dns_name",
        set: |f, v| f.rate_limit.peers_dns_name = v,
    },
];

/// The overrides that were set, to name their variable in errors.
#[derive(Debug, Default)]
pub struct Applied(Vec<&'static Override>);

/// Writes every set (non-empty) variable into `file`.
pub fn apply(file: &mut SidecarFile, env: &dyn Source) -> Applied {
    let mut applied = Applied::default();
    for o in &OVERRIDES {
        if let Some(value) = raw(env, o.var) {
            (o.set)(file, value);
            applied.0.push(o);
        }
    }
    applied
}

impl Applied {
    /// `e`, naming the variable instead of the file's key when the key's value came from one.
    pub fn name_source(&self, mut e: ConfigError) -> ConfigError {
        if let Some(o) = self.0.iter().find(|o| o.key == e.key) {
            e.key = o.var.to_owned();
        }
        e
    }
}
