//! Where a process's keyring comes from, read from the environment.
//!
//! `JWT_ALG` (HS256 by default, RS256, EdDSA) picks the mode. HS256, auth-svc and the gateway
//! alike: `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`), fixed for the process, or `JWT_SECRET_ARN`,
//! the Secrets Manager secret re-read in the background; exactly one. RS256/EdDSA, auth-svc
//! ([`KeyringConfig::from_source`]): the private key, `JWT_PRIVATE_KEY` (+
//! `JWT_PRIVATE_KEY_PREVIOUS`, published only) or `JWT_SECRET_ARN` (the key secret, see
//! [`super::signing_key`]); the gateway ([`KeyringConfig::for_gateway`]): no key at all, auth-svc's
//! JWKS.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;

use super::secrets_manager::SecretsManagerSource;
use super::signing_key::{DEFAULT_PUBLISH_DELAY, SigningKeySource};
use super::store::{KeyringSource, KeyringStore, Refresher};
use super::{Alg, Keyring, MIN_SECRET_BYTES, PrivateKey};
use crate::Secret;
use crate::config::{ConfigError, Source, raw, seconds_or};

/// The path of auth-svc's JWKS (RFC 7517 §5), below `AUTH_SERVICE_URL`.
pub const JWKS_PATH: &str = "/auth/.well-known/jwks.json";

/// The keyring's source. `Debug` never shows a secret (a keyring shows its key ids only).
#[derive(Debug, Clone)]
pub enum KeyringConfig {
    /// HS256: `JWT_SECRET` signs and verifies; `JWT_SECRET_PREVIOUS`, during a rotation, only
    /// verifies. RS256/EdDSA: `JWT_PRIVATE_KEY` signs; `JWT_PRIVATE_KEY_PREVIOUS` is published
    /// and verifies. Built while reading the config, so a bad key fails at start-up.
    Env(Arc<Keyring>),
    /// HS256 `JWT_SECRET_ARN`: `AWSCURRENT` signs, `AWSPREVIOUS` verifies; refreshed in the
    /// background.
    SecretsManager { arn: String },
    /// RS256/EdDSA `JWT_SECRET_ARN` (auth-svc): the key secret; `AWSCURRENT` signs once it is
    /// `publish_delay` old (`JWT_PUBLISH_DELAY_SECS`); refreshed in the background.
    SigningKeySecret { arn: String, alg: Alg, publish_delay: Duration },
    /// RS256/EdDSA (gateway): auth-svc's JWKS at `url`, refreshed in the background.
    Jwks { url: String, alg: Alg },
}

/// Reads `JWT_ALG` (default HS256). Errors name the key and list the accepted values.
pub fn read_alg(src: &dyn Source) -> Result<Alg, ConfigError> {
    match raw(src, "JWT_ALG") {
        None => Ok(Alg::default()),
        Some(v) => v.trim().parse().map_err(|e| ConfigError::new("JWT_ALG", format!("{e}"))),
    }
}

fn refuse(src: &dyn Source, keys: &[&str], alg: Alg, why: &str) -> Result<(), ConfigError> {
    match keys.iter().find(|k| raw(src, k).is_some()) {
        Some(k) => Err(ConfigError::new(k, format!("must not be set with JWT_ALG={alg}: {why}"))),
        None => Ok(()),
    }
}

impl KeyringConfig {
    /// auth-svc's keyring (the issuer). Reads `JWT_ALG`, then the HS256 secrets or the
    /// RS256/EdDSA private key (see the module doc). Errors name the key and never echo a value:
    /// both or neither source set, a secret shorter than 32 bytes, a key that is not a PKCS#8
    /// PEM of the `JWT_ALG` type, settings of the other mode.
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let alg = read_alg(src)?;
        if !alg.is_asymmetric() {
            refuse(src, &["JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_PREVIOUS"], alg, "HS256 uses JWT_SECRET")?;
            return Self::hs256(src);
        }
        let why = "RS256/EdDSA sign with JWT_PRIVATE_KEY or the key secret JWT_SECRET_ARN";
        refuse(src, &["JWT_SECRET", "JWT_SECRET_PREVIOUS"], alg, why)?;
        let publish_delay = seconds_or(src, "JWT_PUBLISH_DELAY_SECS", DEFAULT_PUBLISH_DELAY.as_secs(), 0..=86_400)?;
        match (raw(src, "JWT_PRIVATE_KEY"), raw(src, "JWT_SECRET_ARN")) {
            (Some(_), Some(_)) => {
                Err(ConfigError::new("JWT_SECRET_ARN", "set either JWT_PRIVATE_KEY or JWT_SECRET_ARN, not both"))
            }
            (Some(pem), None) => {
                let current = private_key(&Secret::new(pem), alg, "JWT_PRIVATE_KEY")?;
                let previous = match raw(src, "JWT_PRIVATE_KEY_PREVIOUS") {
                    Some(pem) => vec![private_key(&Secret::new(pem), alg, "JWT_PRIVATE_KEY_PREVIOUS")?],
                    None => vec![],
                };
                let publics: Vec<_> = previous.iter().map(|k| k.public_jwk().clone()).collect();
                let ring = Keyring::signing(&current, &publics)
                    .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY_PREVIOUS", e.to_string()))?;
                Ok(Self::Env(Arc::new(ring)))
            }
            (None, Some(arn)) => Ok(Self::SigningKeySecret { arn: arn.trim().to_owned(), alg, publish_delay }),
            (None, None) => Err(ConfigError::new(
                "JWT_PRIVATE_KEY",
                format!("JWT_ALG={alg} needs JWT_PRIVATE_KEY (PKCS#8 PEM) or JWT_SECRET_ARN (the key secret)"),
            )),
        }
    }

    /// The gateway's keyring (a verifier). HS256: as [`KeyringConfig::from_source`], without
    /// private keys. RS256/EdDSA: refuses every secret and private key setting (the gateway
    /// must not be able to sign) and loads the JWKS at `auth_service_url` + [`JWKS_PATH`].
    pub fn for_gateway(src: &dyn Source, auth_service_url: &str) -> Result<Self, ConfigError> {
        let alg = read_alg(src)?;
        let keys = ["JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_PREVIOUS"];
        refuse(src, &keys, alg, "gateways verify and never hold a private key")?;
        if !alg.is_asymmetric() {
            return Self::hs256(src);
        }
        let secrets = ["JWT_SECRET", "JWT_SECRET_PREVIOUS", "JWT_SECRET_ARN"];
        refuse(src, &secrets, alg, "the gateway verifies with auth-svc's public keys (JWKS) only")?;
        Ok(Self::Jwks { url: format!("{}{JWKS_PATH}", auth_service_url.trim_end_matches('/')), alg })
    }

    fn hs256(src: &dyn Source) -> Result<Self, ConfigError> {
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

    /// The mode this config verifies in.
    pub fn alg(&self) -> Alg {
        match self {
            Self::Env(ring) => ring.alg(),
            Self::SecretsManager { .. } => Alg::HS256,
            Self::SigningKeySecret { alg, .. } | Self::Jwks { alg, .. } => *alg,
        }
    }

    /// The store, and for the refreshable sources the [`Refresher`] that fills it (run it on a
    /// background task): re-read every `interval`, on request at most once per `min_gap`.
    pub fn build(
        &self,
        interval: Duration,
        min_gap: Duration,
        refreshes: Option<IntCounterVec>,
    ) -> (Arc<KeyringStore>, Option<Refresher>) {
        let source: Box<dyn KeyringSource> = match self {
            Self::Env(ring) => {
                if let Some(c) = &refreshes {
                    c.with_label_values(&["success"]).inc();
                }
                return (Arc::new(KeyringStore::fixed(ring.clone())), None);
            }
            Self::SecretsManager { arn } => Box::new(SecretsManagerSource::new(arn.clone())),
            Self::SigningKeySecret { arn, alg, publish_delay } => {
                Box::new(SigningKeySource::new(arn.clone(), *alg, *publish_delay))
            }
            Self::Jwks { url, .. } => Box::new(super::jwks_source::JwksSource::new(url.clone())),
        };
        let store = Arc::new(KeyringStore::refreshable());
        let refresher = Refresher { source, store: store.clone(), interval, min_gap, refreshes };
        (store, Some(refresher))
    }
}

fn private_key(pem: &Secret, alg: Alg, key: &str) -> Result<PrivateKey, ConfigError> {
    let k = PrivateKey::from_pkcs8_pem(pem.expose()).map_err(|e| ConfigError::new(key, e.to_string()))?;
    if k.alg() != alg {
        return Err(ConfigError::new(key, format!("holds a key for {}, but JWT_ALG is {alg}", k.alg())));
    }
    Ok(k)
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

    #[test]
    fn asymmetric_modes_take_a_private_key_of_their_alg_and_refuse_secrets() {
        let (key, pem) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let pem = pem.expose();
        let bad = KeyringConfig::from_source(&env(&[("JWT_ALG", "ES256")])).unwrap_err();
        assert_eq!(bad.key, "JWT_ALG");
        let ok = KeyringConfig::from_source(&env(&[("JWT_ALG", "EdDSA"), ("JWT_PRIVATE_KEY", pem)])).unwrap();
        let KeyringConfig::Env(ring) = &ok else { panic!("{ok:?}") };
        assert_eq!((ring.alg(), ring.current_kid()), (Alg::EdDSA, key.kid()));
        assert!(!format!("{ok:?}").contains("PRIVATE"));
        let wrong = KeyringConfig::from_source(&env(&[("JWT_ALG", "RS256"), ("JWT_PRIVATE_KEY", pem)])).unwrap_err();
        assert_eq!(wrong.key, "JWT_PRIVATE_KEY");
        assert!(!wrong.to_string().contains("PRIVATE KEY-"), "{wrong}");
        let secret =
            KeyringConfig::from_source(&env(&[("JWT_ALG", "EdDSA"), ("JWT_PRIVATE_KEY", pem), ("JWT_SECRET", GOOD)]));
        assert_eq!(secret.unwrap_err().key, "JWT_SECRET");
        assert_eq!(KeyringConfig::from_source(&env(&[("JWT_ALG", "EdDSA")])).unwrap_err().key, "JWT_PRIVATE_KEY");
        let arn = KeyringConfig::from_source(&env(&[("JWT_ALG", "RS256"), ("JWT_SECRET_ARN", "arn:x")])).unwrap();
        assert!(matches!(arn, KeyringConfig::SigningKeySecret { alg: Alg::RS256, publish_delay, .. }
            if publish_delay == DEFAULT_PUBLISH_DELAY));
        let hs = KeyringConfig::from_source(&env(&[("JWT_SECRET", GOOD), ("JWT_PRIVATE_KEY", pem)])).unwrap_err();
        assert_eq!(hs.key, "JWT_PRIVATE_KEY");
    }

    #[test]
    fn gateways_in_asymmetric_modes_hold_no_key() {
        let url = "http://127.0.0.1:3000/";
        let cfg = KeyringConfig::for_gateway(&env(&[("JWT_ALG", "RS256")]), url).unwrap();
        assert!(matches!(&cfg, KeyringConfig::Jwks { url, alg: Alg::RS256 }
            if url == "http://127.0.0.1:3000/auth/.well-known/jwks.json"));
        for key in ["JWT_SECRET", "JWT_SECRET_PREVIOUS", "JWT_SECRET_ARN", "JWT_PRIVATE_KEY"] {
            let err = KeyringConfig::for_gateway(&env(&[("JWT_ALG", "EdDSA"), (key, GOOD)]), url).unwrap_err();
            assert_eq!(err.key, key);
        }
        let hs = KeyringConfig::for_gateway(&env(&[("JWT_SECRET", GOOD)]), url).unwrap();
        assert!(matches!(hs, KeyringConfig::Env(_)));
        let err = KeyringConfig::for_gateway(&env(&[("JWT_SECRET", GOOD), ("JWT_PRIVATE_KEY", "x")]), url);
        assert_eq!(err.unwrap_err().key, "JWT_PRIVATE_KEY");
    }
}
