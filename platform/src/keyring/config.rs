//! Where a process's keyring comes from, read from the environment the same way by auth-svc
//! and the gateway: `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`), fixed for the process, or
//! `JWT_SECRET_ARN`, the Secrets Manager secret re-read in the background. Exactly one.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;

use super::secrets_manager::SecretsManagerSource;
use super::store::{KeyringStore, Refresher};
use super::{Keyring, MIN_SECRET_BYTES};
use crate::Secret;
use crate::config::{ConfigError, Source, raw};

/// The keyring's source. `Debug` never shows a secret (a keyring shows its key ids only).
#[derive(Debug, Clone)]
pub enum KeyringConfig {
    /// `JWT_SECRET` signs and verifies; `JWT_SECRET_PREVIOUS`, during a rotation, only verifies.
    /// Built while reading the config, so a bad secret fails at start-up.
    Env(Arc<Keyring>),
    /// `JWT_SECRET_ARN`: `AWSCURRENT` signs, `AWSPREVIOUS` verifies; refreshed in the background.
    SecretsManager { arn: String },
}

impl KeyringConfig {
    /// Reads `JWT_SECRET`, `JWT_SECRET_PREVIOUS` and `JWT_SECRET_ARN`. Errors name the key and
    /// never echo a value: both or neither source set, or a secret shorter than 32 bytes.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let current = raw(src, "JWT_SECRET").map(Secret::new);
        let previous = raw(src, "JWT_SECRET_PREVIOUS").map(Secret::new);
        match (current, raw(src, "JWT_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                Err(ConfigError::new("JWT_SECRET_ARN", "set either JWT_SECRET or JWT_SECRET_ARN, not both"))
            }
            (Some(current), None) => {
                let ring = Keyring::new(&current, previous.as_ref()).map_err(|e| {
                    let key =
                        if current.expose().len() < MIN_SECRET_BYTES { "JWT_SECRET" } else { "JWT_SECRET_PREVIOUS" };
                    ConfigError::new(key, e.to_string())
                })?;
                Ok(Self::Env(Arc::new(ring)))
            }
            (None, Some(arn)) => Ok(Self::SecretsManager { arn: arn.trim().to_owned() }),
            (None, None) => Err(ConfigError::new("JWT_SECRET", "either JWT_SECRET or JWT_SECRET_ARN is required")),
        }
    }

    /// The store, and for Secrets Manager the [`Refresher`] that fills it (run it on a
    /// background task): re-read every `interval`, on request at most once per `min_gap`.
    pub fn build(
        &self,
        interval: Duration,
        min_gap: Duration,
        refreshes: Option<IntCounterVec>,
    ) -> (Arc<KeyringStore>, Option<Refresher>) {
        match self {
            Self::Env(ring) => {
                if let Some(c) = &refreshes {
                    c.with_label_values(&["success"]).inc();
                }
                (Arc::new(KeyringStore::fixed(ring.clone())), None)
            }
            Self::SecretsManager { arn } => {
                let store = Arc::new(KeyringStore::refreshable());
                let refresher = Refresher {
                    source: Box::new(SecretsManagerSource::new(arn.clone())),
                    store: store.clone(),
                    interval,
                    min_gap,
                    refreshes,
                };
                (store, Some(refresher))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn exactly_one_source_and_errors_name_the_key_without_the_value() {
        assert!(matches!(KeyringConfig::from_source(&env(&[("JWT_SECRET", GOOD)])), Ok(KeyringConfig::Env(_))));
        assert!(matches!(
            KeyringConfig::from_source(&env(&[("JWT_SECRET_ARN", "arn:aws:secretsmanager:x")])),
            Ok(KeyringConfig::SecretsManager { .. })
        ));
        let both = KeyringConfig::from_source(&env(&[("JWT_SECRET", GOOD), ("JWT_SECRET_ARN", "a")])).unwrap_err();
        assert_eq!(both.key, "JWT_SECRET_ARN");
        assert_eq!(KeyringConfig::from_source(&env(&[])).unwrap_err().key, "JWT_SECRET");
        let short = KeyringConfig::from_source(&env(&[("JWT_SECRET", "hunter2-short")])).unwrap_err();
        assert_eq!(short.key, "JWT_SECRET");
        assert!(!short.to_string().contains("hunter2"));
        let prev =
            KeyringConfig::from_source(&env(&[("JWT_SECRET", GOOD), ("JWT_SECRET_PREVIOUS", "short")])).unwrap_err();
        assert_eq!(prev.key, "JWT_SECRET_PREVIOUS");
        let dbg = format!("{:?}", KeyringConfig::from_source(&env(&[("JWT_SECRET", GOOD)])).unwrap());
        assert!(!dbg.contains(GOOD), "{dbg}");
    }
}
