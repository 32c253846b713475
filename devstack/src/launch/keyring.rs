//! Where auth-svc and the gateway get their JWT keyring ([`KeyringSource`]), and the Secrets
//! Manager stand-in the tests point them at ([`AwsEndpoint`]).

use std::fmt;

use platform::Secret;
use platform::keyring::Alg;

use super::{Env, signing};

/// A Secrets Manager endpoint other than AWS's (moto in the tests): the standard
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` plus static test credentials, and no instance metadata
/// or shared config files, so nothing outside the test is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEndpoint {
    pub secrets_manager_url: String,
    pub region: String,
}

impl AwsEndpoint {
    /// moto (or any stand-in) at `url`, region `us-east-1`.
    pub fn stand_in(url: impl Into<String>) -> Self {
        Self { secrets_manager_url: url.into(), region: "us-east-1".into() }
    }

    pub(super) fn env(&self, env: &mut Env) {
        env.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", &self.secrets_manager_url);
        env.set("AWS_REGION", &self.region);
        env.set("AWS_ACCESS_KEY_ID", "testing");
        env.set("AWS_SECRET_ACCESS_KEY", "testing");
        env.set("AWS_EC2_METADATA_DISABLED", "true");
        env.set("AWS_CONFIG_FILE", "/nonexistent");
        env.set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    }
}

/// Where a binary's JWT keyring comes from (auth-svc and gateway read the same variables).
#[derive(Clone, PartialEq, Eq)]
pub enum KeyringSource {
    /// `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`): fixed for the life of the process.
    Secret { current: Secret, previous: Option<Secret> },
    /// `JWT_SECRET_ARN`: AWSCURRENT and AWSPREVIOUS from Secrets Manager at `endpoint`.
    SecretsManager { arn: String, endpoint: AwsEndpoint },
    /// auth-svc in RS256/EdDSA mode: `JWT_ALG` + `JWT_PRIVATE_KEY` (PKCS#8 PEM) and
    /// optionally `JWT_PRIVATE_KEY_PREVIOUS` (published, never signs).
    PrivateKey { alg: Alg, current: Secret, previous: Option<Secret> },
    /// auth-svc in RS256/EdDSA mode: `JWT_ALG` + `JWT_SECRET_ARN` = the key secret at
    /// `endpoint`; `JWT_PUBLISH_DELAY_SECS` when given (default 480 s).
    KeySecret { alg: Alg, arn: String, endpoint: AwsEndpoint, publish_delay_secs: Option<u64> },
    /// The gateway in RS256/EdDSA mode: `JWT_ALG` only; it loads auth-svc's JWKS.
    Jwks { alg: Alg },
}

impl fmt::Debug for KeyringSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringSource::Secret { previous, .. } => f
                .debug_struct("Secret")
                .field("current", &"[redacted]")
                .field("previous", &previous.as_ref().map(|_| "[redacted]"))
                .finish(),
            KeyringSource::SecretsManager { arn, endpoint } => {
                f.debug_struct("SecretsManager").field("arn", arn).field("endpoint", endpoint).finish()
            }
            KeyringSource::PrivateKey { alg, previous, .. } => f
                .debug_struct("PrivateKey")
                .field("alg", alg)
                .field("current", &"[redacted]")
                .field("previous", &previous.as_ref().map(|_| "[redacted]"))
                .finish(),
            KeyringSource::KeySecret { alg, arn, endpoint, publish_delay_secs } => f
                .debug_struct("KeySecret")
                .field("alg", alg)
                .field("arn", arn)
                .field("endpoint", endpoint)
                .field("publish_delay_secs", publish_delay_secs)
                .finish(),
            KeyringSource::Jwks { alg } => f.debug_struct("Jwks").field("alg", alg).finish(),
        }
    }
}

impl KeyringSource {
    /// One fixed secret (`JWT_SECRET`).
    pub fn secret(current: &str) -> Self {
        KeyringSource::Secret { current: Secret::new(current), previous: None }
    }

    /// A secret and the previous one during a rotation (`JWT_SECRET_PREVIOUS`, verify only).
    pub fn rotating(current: &str, previous: Option<&str>) -> Self {
        KeyringSource::Secret { current: Secret::new(current), previous: previous.map(Secret::new) }
    }

    pub(super) fn env(&self, env: &mut Env) {
        match self {
            KeyringSource::Secret { current, previous } => {
                env.set("JWT_SECRET", current.expose());
                match previous {
                    Some(p) => env.set("JWT_SECRET_PREVIOUS", p.expose()),
                    None => env.unset("JWT_SECRET_PREVIOUS"),
                }
                env.unset("JWT_SECRET_ARN");
                signing::hs256(env);
            }
            KeyringSource::SecretsManager { arn, endpoint } => {
                env.set("JWT_SECRET_ARN", arn);
                env.unset("JWT_SECRET");
                env.unset("JWT_SECRET_PREVIOUS");
                endpoint.env(env);
                signing::hs256(env);
            }
            KeyringSource::PrivateKey { alg, current, previous } => {
                signing::private_key(env, *alg, current, previous.as_ref());
            }
            KeyringSource::KeySecret { alg, arn, endpoint, publish_delay_secs } => {
                signing::key_secret(env, *alg, arn, endpoint, *publish_delay_secs);
            }
            KeyringSource::Jwks { alg } => signing::jwks(env, *alg),
        }
    }
}
