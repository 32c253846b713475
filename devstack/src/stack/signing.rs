//! The run's token signing: which keyring auth-svc gets and which the gateways get.
//!
//! HS256 (default): one secret for all. RS256/EdDSA (`--jwt-alg`): a key pair generated for
//! the run; auth-svc alone gets the private key (`JWT_PRIVATE_KEY`, in its environment only,
//! never logged), the gateways only `JWT_ALG` and verify with auth-svc's JWKS, as on ECS.

use anyhow::{Result, anyhow};
use platform::keyring::{Alg, PrivateKey};

use super::Options;
use crate::launch::KeyringSource;

/// (auth-svc's keyring, the gateways' keyring) for `opts`. An explicit `opts.keyring` wins;
/// when it is an RS256/EdDSA signing key, the gateways get that mode's JWKS.
pub(super) fn keyrings(opts: &Options, jwt_secret: &str) -> Result<(KeyringSource, KeyringSource)> {
    if let Some(auth) = &opts.keyring {
        let gateway = match auth {
            KeyringSource::PrivateKey { alg, .. } | KeyringSource::KeySecret { alg, .. } => {
                KeyringSource::Jwks { alg: *alg }
            }
            other => other.clone(),
        };
        return Ok((auth.clone(), gateway));
    }
    let alg = opts.jwt_alg;
    if !alg.is_asymmetric() {
        let secret = KeyringSource::secret(jwt_secret);
        return Ok((secret.clone(), secret));
    }
    let (_, pem) = PrivateKey::generate(alg).map_err(|e| anyhow!("generating the run's {alg} key: {e}"))?;
    Ok((KeyringSource::PrivateKey { alg, current: pem, previous: None }, KeyringSource::Jwks { alg }))
}

/// The mode of a keyring, for the banner.
pub(super) fn mode(keyring: &KeyringSource) -> Alg {
    match keyring {
        KeyringSource::PrivateKey { alg, .. } | KeyringSource::KeySecret { alg, .. } | KeyringSource::Jwks { alg } => {
            *alg
        }
        KeyringSource::Secret { .. } | KeyringSource::SecretsManager { .. } => Alg::HS256,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn asymmetric_runs_give_the_private_key_to_auth_svc_only() {
        let mut opts = Options::new(PathBuf::from("/nonexistent"));
        let (auth, gateway) = keyrings(&opts, "s".repeat(40).as_str()).unwrap();
        assert!(matches!(auth, KeyringSource::Secret { .. }) && auth == gateway);
        for alg in [Alg::RS256, Alg::EdDSA] {
            opts.jwt_alg = alg;
            let (auth, gateway) = keyrings(&opts, "unused").unwrap();
            assert!(matches!(&auth, KeyringSource::PrivateKey { alg: a, .. } if *a == alg));
            assert_eq!(gateway, KeyringSource::Jwks { alg });
            assert_eq!((mode(&auth), mode(&gateway)), (alg, alg));
            assert!(!format!("{auth:?}").contains("PRIVATE KEY"), "{auth:?}");
        }
    }
}
