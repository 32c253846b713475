//! auth-svc's RS256/EdDSA keyring from Secrets Manager (`JWT_SECRET_ARN` in those modes).
//!
//! Each version of the secret is `{"alg": "RS256"|"EdDSA", "private_key": "<PKCS#8 PEM>"}`
//! (what `ecs/deploy/signing_key.sh` and `auth-svc keygen` write). `AWSCURRENT`, `AWSPREVIOUS`
//! and `AWSPENDING` are all published in the JWKS; `AWSCURRENT` signs only once its version is
//! `publish_delay` old (from its `CreatedDate`), so every gateway holds its public key before
//! the first token naming it exists. Until then `AWSPREVIOUS` keeps signing.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::secrets_manager::SecretsManagerSource;
use super::store::KeyringSource;
use super::{Alg, Keyring, PrivateKey};
use crate::Secret;

/// Default `JWT_PUBLISH_DELAY_SECS`: above the gateways' default JWKS refresh period (300 s).
pub const DEFAULT_PUBLISH_DELAY: Duration = Duration::from_secs(480);

#[derive(Deserialize)]
struct KeyDoc {
    alg: String,
    private_key: String,
}

/// Parses one version's `SecretString` into its key. The document's `alg` must name the key's
/// type. Errors describe the shape, never the key.
pub fn parse_key_document(text: &Secret) -> Result<PrivateKey, String> {
    let doc: KeyDoc = serde_json::from_str(text.expose())
        .map_err(|_| "SecretString is not a JSON object with \"alg\" and \"private_key\" strings".to_owned())?;
    let alg: Alg = doc.alg.parse().map_err(|e| format!("\"alg\" {e}"))?;
    let key = PrivateKey::from_pkcs8_pem(&doc.private_key).map_err(|e| format!("\"private_key\": {e}"))?;
    if key.alg() != alg {
        return Err(format!("\"alg\" is {alg} but \"private_key\" holds a key for {}", key.alg()));
    }
    Ok(key)
}

/// One staged version: its key and creation time (unix seconds, if known).
pub struct Version {
    pub key: PrivateKey,
    pub created: Option<i64>,
}

/// Chooses the signing key at `now` (unix seconds) and builds the keyring publishing every
/// staged key. `current` must be an `alg` key (errors otherwise). It signs once
/// `created + publish_delay <= now`, or at once when there is no `previous` (nothing else
/// could sign); until then `previous` signs.
pub fn select(
    alg: Alg,
    current: Version,
    previous: Option<Version>,
    pending: Option<Version>,
    now: i64,
    publish_delay: Duration,
) -> Result<Keyring, String> {
    if current.key.alg() != alg {
        return Err(format!("AWSCURRENT holds a key for {}, but JWT_ALG is {alg}", current.key.alg()));
    }
    let delay = i64::try_from(publish_delay.as_secs()).unwrap_or(i64::MAX);
    let published = current.created.is_none_or(|c| c.saturating_add(delay) <= now);
    let (signer, mut others) = match previous {
        Some(prev) if !published => (prev.key, vec![current.key]),
        prev => (current.key, prev.map(|p| p.key).into_iter().collect()),
    };
    others.extend(pending.map(|p| p.key));
    let publics: Vec<_> = others.iter().map(|k| k.public_jwk().clone()).collect();
    Keyring::signing(&signer, &publics).map_err(|e| e.to_string())
}

/// The [`KeyringSource`] of auth-svc in RS256/EdDSA mode with `JWT_SECRET_ARN`.
pub struct SigningKeySource {
    secret: SecretsManagerSource,
    alg: Alg,
    publish_delay: Duration,
}

impl SigningKeySource {
    pub fn new(arn: impl Into<String>, alg: Alg, publish_delay: Duration) -> Self {
        Self { secret: SecretsManagerSource::new(arn), alg, publish_delay }
    }

    async fn version(&self, stage: &str) -> Result<Option<Version>, String> {
        match self.secret.version(stage).await? {
            None => Ok(None),
            Some((text, created)) => {
                let key = parse_key_document(&text).map_err(|e| format!("{stage}: {e}"))?;
                Ok(Some(Version { key, created }))
            }
        }
    }
}

#[async_trait]
impl KeyringSource for SigningKeySource {
    async fn load(&self) -> Result<Keyring, String> {
        let current = self.version("AWSCURRENT").await?.ok_or_else(|| "AWSCURRENT version not found".to_owned())?;
        // Any failure other than "no such version" fails the refresh: a transient error must
        // not drop a key that still verifies tokens.
        let previous = self.version("AWSPREVIOUS").await?;
        let pending = self.version("AWSPENDING").await?;
        select(self.alg, current, previous, pending, chrono::Utc::now().timestamp(), self.publish_delay)
    }

    fn describe(&self) -> String {
        format!("Secrets Manager signing key {}", self.secret.arn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(alg: Alg, created: i64) -> (Version, String) {
        let (key, _) = PrivateKey::generate(alg).unwrap();
        let kid = key.kid().to_owned();
        (Version { key, created: Some(created) }, kid)
    }

    #[test]
    fn the_new_key_signs_only_after_the_publish_delay() {
        let delay = Duration::from_secs(480);
        let (old, old_kid) = version(Alg::EdDSA, 0);
        let (new, new_kid) = version(Alg::EdDSA, 1000);
        let (pending, pending_kid) = version(Alg::EdDSA, 1200);
        let ring = select(Alg::EdDSA, new, Some(old), Some(pending), 1000 + 479, delay).unwrap();
        assert_eq!(ring.current_kid(), old_kid);
        let published: Vec<_> = ring.jwks().keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(published, [old_kid.clone(), new_kid.clone(), pending_kid]);

        let (old, _) = version(Alg::EdDSA, 0);
        let (new, new_kid2) = version(Alg::EdDSA, 1000);
        let ring = select(Alg::EdDSA, new, Some(old), None, 1000 + 480, delay).unwrap();
        assert_eq!(ring.current_kid(), new_kid2);
        assert_eq!(ring.jwks().keys.len(), 2);
        assert_ne!(new_kid, new_kid2);
    }

    #[test]
    fn a_first_key_signs_at_once_and_a_key_of_another_alg_is_refused() {
        let (first, kid) = version(Alg::EdDSA, 1000);
        let ring = select(Alg::EdDSA, first, None, None, 1000, DEFAULT_PUBLISH_DELAY).unwrap();
        assert_eq!(ring.current_kid(), kid);
        let (first, _) = version(Alg::EdDSA, 0);
        let err = select(Alg::RS256, first, None, None, 1000, DEFAULT_PUBLISH_DELAY).unwrap_err();
        assert!(err.contains("JWT_ALG is RS256"), "{err}");
    }

    #[test]
    fn key_documents_name_the_keys_algorithm() {
        let (_, pem) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let doc = |alg: &str| Secret::new(serde_json::json!({"alg": alg, "private_key": pem.expose()}).to_string());
        assert_eq!(parse_key_document(&doc("EdDSA")).unwrap().alg(), Alg::EdDSA);
        let err = parse_key_document(&doc("RS256")).unwrap_err();
        assert!(err.contains("a key for EdDSA") && !err.contains("PRIVATE"), "{err}");
        assert!(parse_key_document(&doc("none")).is_err());
        let err = parse_key_document(&Secret::new(r#"{"alg":"EdDSA","private_key":"hunter2"}"#)).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_key_document(&Secret::new("not json")).is_err());
    }
}
