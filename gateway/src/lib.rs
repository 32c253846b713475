//! The gateway: a pingora reverse proxy that runs beside task-svc in the same ECS task, decides
//! every request's identity itself (HS256 with a keyring indexed by `kid`, a verified-token
//! cache, auth-svc only for key ids it does not hold) and forwards only authenticated requests
//! to task-svc on loopback. See `docs/gateway.md`.

// Tests may unwrap; production code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod authenticator;
pub mod config;
pub mod decision;
pub mod fallback;
pub mod keyring_source;
pub mod metrics;
pub mod proxy;
pub mod resolver;
pub mod token_cache;

use std::sync::Arc;
use std::time::Duration;

use pingora::prelude::background_service;
use pingora::proxy::http_proxy_service;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use platform::keyring::Keyring;

use crate::admin::AdminService;
use crate::authenticator::Authenticator;
use crate::config::{Config, KeyringConfig};
use crate::fallback::{Fallback, FallbackConfig};
use crate::keyring_source::{KeyringRefresher, KeyringStore, SecretsManagerSource};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::resolver::{AuthResolver, ResolverService};
use crate::token_cache::{DecisionExpiry, TokenCache};

/// How long a fallback answer is shared with identical tokens when the main cache is off.
const FALLBACK_ANSWER_TTL: Duration = Duration::from_secs(1);

/// Builds the pingora server with the proxy and its background services (keyring refresh,
/// DNS re-resolution, metrics/readiness). The caller runs it (`run_forever`).
pub fn build_server(config: Config) -> anyhow::Result<Server> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let keyring = Arc::new(KeyringStore::new(metrics.clone()));
    let resolver = Arc::new(AuthResolver::new(&config.auth_host, config.auth_port, metrics.clone()));
    let fallback = Fallback::new(
        FallbackConfig {
            base_url: config.auth_url.clone(),
            deadline: config.fallback_deadline,
            rate_limit_per_sec: config.rate_limit_per_sec,
            rate_limit_burst: config.rate_limit_burst,
            unknown_kid_ttl: config.unknown_kid_ttl,
            answer_ttl: FALLBACK_ANSWER_TTL,
        },
        resolver.clone(),
        keyring.clone(),
        metrics.clone(),
    )?;
    let cache = TokenCache::new(
        config.cache_capacity,
        DecisionExpiry { max_ttl: config.cache_max_ttl, negative_ttl: config.negative_ttl },
    );
    let auth = Arc::new(Authenticator {
        keyring: keyring.clone(),
        cache,
        fallback,
        leeway_secs: config.leeway_secs,
        metrics: metrics.clone(),
    });

    // pingora's defaults (300 s grace) exceed any ECS stopTimeout; ours come from sidecar.toml.
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(config.graceful_shutdown_timeout_secs),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    if matches!(config.keyring, KeyringConfig::SecretsManager { .. }) {
        let secs = config.keyring_refresh_interval.as_secs();
        metrics.keyring_refresh_interval.set(i64::try_from(secs).unwrap_or(i64::MAX));
    }
    let refresher = match &config.keyring {
        KeyringConfig::Env { current, previous } => {
            // Fixed for the life of the process: load now, nothing to refresh.
            keyring.set(Keyring::new(current, previous.as_ref())?);
            metrics.keyring_refreshes.with_label_values(&["success"]).inc();
            None
        }
        KeyringConfig::SecretsManager { arn } => Some(KeyringRefresher {
            source: Box::new(SecretsManagerSource::new(arn.clone())),
            store: keyring.clone(),
            interval: config.keyring_refresh_interval,
            metrics: metrics.clone(),
        }),
    };

    let gateway = Gateway { config: config.clone(), auth, metrics: metrics.clone() };
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    if let Some(refresher) = refresher {
        server.add_service(background_service("keyring refresh", refresher));
    }
    server.add_service(background_service(
        "auth-svc resolver",
        ResolverService { resolver, interval: config.resolve_interval },
    ));
    server.add_service(background_service(
        "metrics",
        AdminService { addr: config.metrics, metrics, keyring, upstream_metrics: config.upstream_metrics },
    ));
    tracing::info!(
        listen = %config.listen,
        upstream = %config.upstream,
        auth = %config.auth_url,
        metrics = %config.metrics,
        cache = config.cache_capacity.is_some(),
        "gateway configured"
    );
    Ok(server)
}
