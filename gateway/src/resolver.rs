//! The auth-svc address. In ECS it is a Cloud Map DNS name whose records change when auth-svc
//! tasks are replaced, so it is re-resolved periodically by a background service rather than
//! once at start; the fallback HTTP client reads the last good answer (no DNS lookup on the
//! request path, and a failed lookup keeps the previous addresses).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rand::seq::SliceRandom;

use crate::metrics::Metrics;

pub struct AuthResolver {
    host: String,
    port: u16,
    addrs: RwLock<Arc<Vec<SocketAddr>>>,
    metrics: Metrics,
}

impl AuthResolver {
    pub fn new(host: &str, port: u16, metrics: Metrics) -> Self {
        let initial = host.parse::<IpAddr>().map(|ip| vec![SocketAddr::new(ip, port)]).unwrap_or_default();
        Self { host: host.to_owned(), port, addrs: RwLock::new(Arc::new(initial)), metrics }
    }

    pub fn is_literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }

    pub fn current(&self) -> Arc<Vec<SocketAddr>> {
        self.addrs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Looks the name up now; keeps the previous answer on failure or an empty answer.
    pub async fn refresh(&self) -> bool {
        if self.is_literal() {
            return true;
        }
        match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(found) => {
                let mut found: Vec<SocketAddr> = found.collect();
                if found.is_empty() {
                    self.metrics.dns_resolutions.with_label_values(&["failure"]).inc();
                    return false;
                }
                found.sort();
                found.dedup();
                let mut guard = self.addrs.write().unwrap_or_else(|e| e.into_inner());
                if **guard != found {
                    tracing::info!(host = %self.host, addrs = ?found, "auth-svc address changed");
                    *guard = Arc::new(found);
                }
                self.metrics.dns_resolutions.with_label_values(&["success"]).inc();
                true
            }
            Err(e) => {
                self.metrics.dns_resolutions.with_label_values(&["failure"]).inc();
                tracing::warn!(host = %self.host, error = %e, "auth-svc DNS lookup failed; keeping previous addresses");
                false
            }
        }
    }
}

/// The auth-svc client's resolver: answers from the last lookup, in a random order per call so
/// connections spread over the auth-svc tasks; if there was no lookup yet (the first request
/// raced the background service), looks up once inline.
pub struct ClientResolver(pub Arc<AuthResolver>);

impl reqwest::dns::Resolve for ClientResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let mut addrs = resolver.current();
            if addrs.is_empty() {
                resolver.refresh().await;
                addrs = resolver.current();
            }
            if addrs.is_empty() {
                return Err("auth-svc name does not resolve".into());
            }
            let mut list: Vec<SocketAddr> = addrs.as_ref().clone();
            list.shuffle(&mut rand::thread_rng());
            Ok(Box::new(list.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Background service re-resolving every `interval`.
pub struct ResolverService {
    pub resolver: Arc<AuthResolver>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for ResolverService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.resolver.is_literal() {
            return;
        }
        loop {
            self.resolver.refresh().await;
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literal_addresses_need_no_lookup_and_names_resolve() {
        let r = AuthResolver::new("127.0.0.1", 3000, Metrics::new());
        assert_eq!(r.current().as_slice(), &["127.0.0.1:3000".parse::<SocketAddr>().unwrap()]);
        let r = AuthResolver::new("localhost", 3000, Metrics::new());
        assert!(r.current().is_empty());
        assert!(r.refresh().await);
        assert!(r.current().iter().all(|a| a.port() == 3000 && a.ip().is_loopback()));
        let bad = AuthResolver::new("no-such-host.invalid", 3000, Metrics::new());
        assert!(!bad.refresh().await);
    }
}
