//! Where the keyring comes from and how it stays current.
//!
//! - `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`): loaded once at start.
//! - `JWT_SECRET_ARN`: the Secrets Manager versions AWSCURRENT and AWSPREVIOUS, read with the
//!   AWS SDK (standard credential and endpoint resolution, so tests point it at moto with
//!   `AWS_ENDPOINT_URL_SECRETS_MANAGER`), re-read every `refresh_interval` and whenever a
//!   fallback call proved a key id we do not hold is real. A failed refresh keeps the last good
//!   keyring: a Secrets Manager hiccup must not log everybody out.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use platform::Secret;
use platform::keyring::Keyring;
use serde::Deserialize;
use tokio::sync::{Notify, OnceCell};

use crate::metrics::Metrics;

struct Loaded {
    ring: Arc<Keyring>,
    at: Instant,
}

/// The keyring in use, shared by every request. `None` until the first successful load.
pub struct KeyringStore {
    current: RwLock<Option<Loaded>>,
    refresh_wanted: Notify,
    metrics: Metrics,
}

impl KeyringStore {
    pub fn new(metrics: Metrics) -> Self {
        Self { current: RwLock::new(None), refresh_wanted: Notify::new(), metrics }
    }

    pub fn current(&self) -> Option<Arc<Keyring>> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc; the value is intact.
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|l| l.ring.clone())
    }

    pub fn is_ready(&self) -> bool {
        self.current().is_some()
    }

    pub fn age(&self) -> Option<Duration> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|l| l.at.elapsed())
    }

    pub fn set(&self, ring: Keyring) {
        let kids: Vec<String> = ring.kids().into_iter().map(str::to_owned).collect();
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed =
            guard.as_ref().is_none_or(|l| l.ring.kids() != kids.iter().map(String::as_str).collect::<Vec<_>>());
        *guard = Some(Loaded { ring: Arc::new(ring), at: Instant::now() });
        drop(guard);
        self.metrics.keyring_loaded.set(1);
        if changed {
            tracing::info!(kids = ?kids, "keyring loaded");
        }
    }

    /// Asks the refresher for an early refresh (a fallback call proved a new key id exists).
    pub fn request_refresh(&self) {
        self.refresh_wanted.notify_one();
    }
}

/// A source that can be re-read.
#[async_trait]
pub trait KeyringSource: Send + Sync {
    async fn load(&self) -> Result<Keyring, String>;
}

/// The JSON document in the secret's SecretString.
#[derive(Debug, Deserialize)]
struct SecretDoc {
    secret: String,
    #[serde(default)]
    expiration: Option<StringOrNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    S(String),
    N(serde_json::Number),
}

/// Parses a SecretString. Errors describe the shape, never the value.
pub fn parse_secret_string(text: &str) -> Result<Secret, String> {
    let doc: SecretDoc = serde_json::from_str(text)
        .map_err(|_| "SecretString is not a JSON object with a \"secret\" string".to_owned())?;
    match &doc.expiration {
        None => {}
        Some(StringOrNumber::S(s)) if s.trim().parse::<u64>().is_ok() => {}
        Some(StringOrNumber::N(n)) if n.as_u64().is_some() => {}
        Some(_) => return Err("\"expiration\" must be a whole number of seconds (string or number)".to_owned()),
    }
    Ok(Secret::new(doc.secret))
}

/// AWSCURRENT + AWSPREVIOUS of one secret.
pub struct SecretsManagerSource {
    arn: String,
    client: OnceCell<aws_sdk_secretsmanager::Client>,
}

impl SecretsManagerSource {
    pub fn new(arn: String) -> Self {
        Self { arn, client: OnceCell::new() }
    }

    async fn client(&self) -> &aws_sdk_secretsmanager::Client {
        self.client
            .get_or_init(|| async {
                let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_secretsmanager::Client::new(&conf)
            })
            .await
    }

    async fn stage(&self, stage: &str) -> Result<Option<Secret>, String> {
        let result = self.client().await.get_secret_value().secret_id(&self.arn).version_stage(stage).send().await;
        match result {
            Ok(out) => {
                let text = out.secret_string().ok_or_else(|| format!("{stage} has no SecretString"))?;
                parse_secret_string(text).map(Some).map_err(|e| format!("{stage}: {e}"))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(format!("{stage}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e))),
        }
    }
}

#[async_trait]
impl KeyringSource for SecretsManagerSource {
    async fn load(&self) -> Result<Keyring, String> {
        let current = self.stage("AWSCURRENT").await?.ok_or_else(|| "AWSCURRENT version not found".to_owned())?;
        // AWSPREVIOUS is absent until the first rotation; any other failure fails the refresh
        // so a transient error never silently drops the previous key.
        let previous = self.stage("AWSPREVIOUS").await?;
        Keyring::new(&current, previous.as_ref()).map_err(|e| e.to_string())
    }
}

/// Fixed secrets from the environment (already validated by the config).
pub struct EnvSource {
    pub current: Secret,
    pub previous: Option<Secret>,
}

#[async_trait]
impl KeyringSource for EnvSource {
    async fn load(&self) -> Result<Keyring, String> {
        Keyring::new(&self.current, self.previous.as_ref()).map_err(|e| e.to_string())
    }
}

/// Background service: loads the keyring, then refreshes it periodically and on request.
pub struct KeyringRefresher {
    pub source: Box<dyn KeyringSource>,
    pub store: Arc<KeyringStore>,
    pub interval: Duration,
    pub metrics: Metrics,
}

/// Early refreshes (requested by fallback) are at most this frequent.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

impl KeyringRefresher {
    pub async fn refresh_once(&self) -> bool {
        match self.source.load().await {
            Ok(ring) => {
                self.store.set(ring);
                self.metrics.keyring_refreshes.with_label_values(&["success"]).inc();
                true
            }
            Err(e) => {
                self.metrics.keyring_refreshes.with_label_values(&["failure"]).inc();
                tracing::warn!(error = %e, ready = self.store.is_ready(), "keyring refresh failed; keeping the last good keyring");
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for KeyringRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            if self.refresh_once().await {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
            }
            // Until the first load succeeds, retry quickly (1, 2, 4 .. 30 s) rather than
            // waiting a whole interval unready.
            let wait = if self.store.is_ready() {
                self.interval
            } else {
                Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30)).min(self.interval)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.store.refresh_wanted.notified() => {
                    tokio::time::sleep(MIN_REFRESH_GAP.saturating_sub(started.elapsed())).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_accepts_string_or_number_expiration() {
        let s = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":"3600"}}"#)).unwrap().expose(), s);
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":3600}}"#)).is_ok());
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}"}}"#)).is_ok());
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":"soon"}}"#)).is_err());
        let err = parse_secret_string(r#"{"token":"hunter2-hunter2"}"#).unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse_secret_string("not json").is_err());
    }

    #[tokio::test]
    async fn failed_refresh_keeps_the_last_good_keyring() {
        struct Flaky(std::sync::atomic::AtomicBool);
        #[async_trait]
        impl KeyringSource for Flaky {
            async fn load(&self) -> Result<Keyring, String> {
                if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    Keyring::new(&Secret::new("k".repeat(40)), None).map_err(|e| e.to_string())
                } else {
                    Err("unreachable".into())
                }
            }
        }
        let metrics = Metrics::new();
        let store = Arc::new(KeyringStore::new(metrics.clone()));
        let r = KeyringRefresher {
            source: Box::new(Flaky(true.into())),
            store: store.clone(),
            interval: Duration::from_secs(60),
            metrics: metrics.clone(),
        };
        assert!(!store.is_ready());
        assert!(r.refresh_once().await);
        let kid = store.current().unwrap().current_kid().to_owned();
        assert!(!r.refresh_once().await);
        assert_eq!(store.current().unwrap().current_kid(), kid);
        assert_eq!(metrics.keyring_refreshes.with_label_values(&["failure"]).get(), 1);
    }
}
