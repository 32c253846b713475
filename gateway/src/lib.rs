//! The gateway: a pingora reverse proxy that runs beside task-svc in the same ECS task, decides
//! every request's identity itself (HS256 with a keyring indexed by `kid`, a verified-token
//! cache, auth-svc only for key ids it does not hold) and forwards only authenticated requests
//! to task-svc on loopback. See `docs/gateway.md`.

// Tests may unwrap; production code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod auth_client;
pub mod authenticator;
pub mod config;
pub mod decision;
pub mod fallback;
pub mod heap_count;
pub mod metrics;
pub mod proxy;
pub mod rate_limit;
pub mod request_id;
pub mod request_limits;
pub mod resolver;
pub mod revocation_list;
pub mod routes;
pub mod scope_check;
pub mod server;
pub mod token_cache;
pub mod trace_context;
pub mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::prelude::background_service;
use pingora::proxy::http_proxy_service;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::BackgroundService;
use platform::keyring::KeyringConfig;
use platform::keyring::store::{KeyringAgeCollector, Refresher};

use crate::admin::{AdminService, AdminState};
use crate::auth_client::AuthClient;
use crate::authenticator::{Authenticator, AuthenticatorSettings};
use crate::config::Config;
use crate::fallback::Fallback;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::rate_limit::RateLimitService;
use crate::resolver::{AuthResolver, ResolverService};
use crate::revocation_list::{RevocationList, RevocationPoller};
use crate::token_cache::TokenCache;

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
/// revocation pulls, DNS re-resolution, metrics/readiness) from the validated `config`. The
/// caller runs it (`Server::run`, which returns after the graceful shutdown). Access lines go
/// to `lines` when the logs are JSON ([`platform::telemetry::init_non_blocking`]), else to
/// `tracing`.
pub fn build_server(config: Config, lines: platform::telemetry::JsonLines) -> anyhow::Result<Server> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let jwt = &config.jwt;
    let (keyring, refresher) =
        config.keyring.build(jwt.refresh_interval, jwt.min_refresh_gap, Some(metrics.keyring_refreshes.clone()));
    metrics.registry().register(Box::new(KeyringAgeCollector::new("gateway_keyring_age_seconds", keyring.clone())?))?;
    if matches!(config.keyring, KeyringConfig::SecretsManager { .. } | KeyringConfig::Jwks { .. }) {
        metrics.keyring_refresh_interval.set(i64::try_from(jwt.refresh_interval.as_secs()).unwrap_or(i64::MAX));
    }
    let origin = &config.auth.origin;
    let resolver = Arc::new(AuthResolver::new(&origin.host, origin.port, metrics.clone()));
    let client = AuthClient::new(&config.auth, resolver.clone())?;
    let revocations = Arc::new(RevocationList::default());
    let auth = Arc::new(Authenticator::new(
        keyring.clone(),
        TokenCache::new(config.cache.capacity, config.cache.expiry),
        Fallback::new(&config.auth, client.clone(), metrics.clone()),
        revocations.clone(),
        AuthenticatorSettings {
            rules: jwt.rules,
            unknown_kid_wait: jwt.unknown_kid_wait,
            revocation_max_age: config.revocation.max_age,
            unknown_kid_ttl: config.cache.unknown_kid_ttl,
        },
        metrics.clone(),
    ));

    let mut conf = config.server.pingora_conf(&config.shutdown);
    // pingora sizes its connection pool server-wide, not per peer.
    conf.upstream_keepalive_pool_size = config.upstream.keepalive_pool_size;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = Gateway::new(config.clone(), auth, metrics.clone(), lines)?;
    if let Some(limits) = gateway.admission.limits.clone() {
        server.add_service(background_service("rate limits", RateLimitService { limits }));
    }
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.server.listen.to_string());
    server.add_service(proxy);
    if let Some(refresher) = refresher {
        server.add_service(background_service("keyring refresh", KeyringRefresh(refresher)));
    }
    let interval = config.revocation.poll_interval;
    let poller = RevocationPoller { client, list: revocations.clone(), interval, metrics: metrics.clone() };
    server.add_service(background_service("revocation list", poller));
    let interval = config.auth.resolve_interval;
    server.add_service(background_service("auth-svc resolver", ResolverService { resolver, interval }));
    let state = AdminState::new(metrics, keyring, revocations, config.upstream.metrics);
    server.add_service(background_service("metrics", AdminService { addr: config.server.metrics, state }));
    tracing::info!(
        listen = %config.server.listen,
        upstream = %config.upstream.target(),
        auth = %origin.url,
        metrics = %config.server.metrics,
        cache = config.cache.capacity.is_some(),
        "gateway configured"
    );
    Ok(server)
}
