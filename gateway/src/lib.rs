//! The gateway: a pingora reverse proxy that runs beside task-svc in the same ECS task, decides
//! every request's identity itself (HS256 with a keyring indexed by `kid`, a verified-token
//! cache, auth-svc only for key ids it does not hold) and forwards only authenticated requests
//! to task-svc on loopback. See `docs/gateway.md`.

// Tests may unwrap; production code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod auth_client;
pub mod authenticator;
pub mod config;
pub mod decision;
pub mod fallback;
pub mod metrics;
pub mod proxy;
pub mod resolver;
pub mod revocation_list;
pub mod token_cache;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::background_service;
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::BackgroundService;
use platform::keyring::KeyringConfig;
use platform::keyring::store::{KeyringAgeCollector, Refresher};

use crate::admin::{AdminService, AdminState};
use crate::auth_client::AuthClient;
use crate::authenticator::{Authenticator, AuthenticatorSettings};
use crate::config::Config;
use crate::fallback::{Fallback, FallbackConfig};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::resolver::{AuthResolver, ResolverService};
use crate::revocation_list::{RevocationList, RevocationPoller};
use crate::token_cache::{DecisionExpiry, TokenCache};

/// How long a fallback answer is shared with identical tokens when the main cache is off.
const FALLBACK_ANSWER_TTL: Duration = Duration::from_secs(1);

/// The Secrets Manager keyring refresher as a pingora background service.
struct KeyringRefresh(Refresher);

#[async_trait]
impl BackgroundService for KeyringRefresh {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.0
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// Builds the pingora server with the proxy and its background services (keyring refresh,
/// revocation pulls, DNS re-resolution, metrics/readiness). The caller runs it
/// (`Server::run`, which returns after the graceful shutdown).
pub fn build_server(config: Config) -> anyhow::Result<Server> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let (keyring, refresher) = config.keyring.build(
        config.keyring_refresh_interval,
        config.keyring_min_refresh_gap,
        Some(metrics.keyring_refreshes.clone()),
    );
    metrics.registry().register(Box::new(KeyringAgeCollector::new("gateway_keyring_age_seconds", keyring.clone())?))?;
    let resolver = Arc::new(AuthResolver::new(&config.auth_host, config.auth_port, metrics.clone()));
    let client = AuthClient::new(&config.auth_url, resolver.clone(), config.fallback_deadline)?;
    let fallback = Fallback::new(
        FallbackConfig {
            deadline: config.fallback_deadline,
            rate_limit_per_sec: config.rate_limit_per_sec,
            rate_limit_burst: config.rate_limit_burst,
            answer_ttl: FALLBACK_ANSWER_TTL,
        },
        client.clone(),
        metrics.clone(),
    );
    let cache = TokenCache::new(
        config.cache_capacity,
        DecisionExpiry { max_ttl: config.cache_max_ttl, negative_ttl: config.negative_ttl },
    );
    let revocations = Arc::new(RevocationList::default());
    let auth = Arc::new(Authenticator::new(
        keyring.clone(),
        cache,
        fallback,
        revocations.clone(),
        AuthenticatorSettings {
            rules: config.rules,
            unknown_kid_wait: config.unknown_kid_wait,
            revocation_max_age: config.revocation_max_age,
            unknown_kid_ttl: config.unknown_kid_ttl,
        },
        metrics.clone(),
    ));

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

    let gateway = Gateway::new(config.clone(), auth, metrics.clone())?;
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    if let Some(refresher) = refresher {
        server.add_service(background_service("keyring refresh", KeyringRefresh(refresher)));
    }
    server.add_service(background_service(
        "revocation list",
        RevocationPoller {
            client,
            list: revocations.clone(),
            interval: config.revocation_poll_interval,
            metrics: metrics.clone(),
        },
    ));
    server.add_service(background_service(
        "auth-svc resolver",
        ResolverService { resolver, interval: config.resolve_interval },
    ));
    server.add_service(background_service(
        "metrics",
        AdminService {
            addr: config.metrics,
            state: AdminState::new(metrics, keyring, revocations, config.upstream_metrics),
        },
    ));
    tracing::info!(
        listen = %config.listen,
        upstream = %config.upstream_socket.as_ref().map_or_else(|| config.upstream.to_string(), |p| p.display().to_string()),
        auth = %config.auth_url,
        metrics = %config.metrics,
        cache = config.cache_capacity.is_some(),
        "gateway configured"
    );
    Ok(server)
}
