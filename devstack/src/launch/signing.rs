//! The RS256/EdDSA settings of [`super::KeyringSource`]: which variables each mode sets and,
//! so that a stray value in the parent's environment cannot switch a child's mode, which it
//! removes.

use platform::Secret;
use platform::keyring::Alg;

use super::{AwsEndpoint, Env};

/// Every variable of the signing modes that is not an HS256 secret.
const ASYMMETRIC_VARS: [&str; 4] = ["JWT_ALG", "JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_PREVIOUS", "JWT_PUBLISH_DELAY_SECS"];
/// The HS256 secret variables.
const HS256_VARS: [&str; 3] = ["JWT_SECRET", "JWT_SECRET_PREVIOUS", "JWT_SECRET_ARN"];

/// HS256 (the existing variants): no `JWT_ALG` (its default is HS256), no private key.
pub(super) fn hs256(env: &mut Env) {
    for k in ASYMMETRIC_VARS {
        env.unset(k);
    }
}

fn asymmetric(env: &mut Env, alg: Alg) {
    for k in ASYMMETRIC_VARS.iter().chain(&HS256_VARS) {
        env.unset(k);
    }
    env.set("JWT_ALG", alg.as_str());
}

/// auth-svc signing with a PKCS#8 PEM key from the environment.
pub(super) fn private_key(env: &mut Env, alg: Alg, current: &Secret, previous: Option<&Secret>) {
    asymmetric(env, alg);
    env.set("JWT_PRIVATE_KEY", current.expose());
    if let Some(p) = previous {
        env.set("JWT_PRIVATE_KEY_PREVIOUS", p.expose());
    }
}

/// auth-svc signing with the key secret `arn` (`{"alg","private_key"}` versions).
pub(super) fn key_secret(env: &mut Env, alg: Alg, arn: &str, endpoint: &AwsEndpoint, publish_delay_secs: Option<u64>) {
    asymmetric(env, alg);
    env.set("JWT_SECRET_ARN", arn);
    if let Some(d) = publish_delay_secs {
        env.set("JWT_PUBLISH_DELAY_SECS", &d.to_string());
    }
    endpoint.env(env);
}

/// The gateway verifying with auth-svc's JWKS: `JWT_ALG` and nothing else.
pub(super) fn jwks(env: &mut Env, alg: Alg) {
    asymmetric(env, alg);
}
