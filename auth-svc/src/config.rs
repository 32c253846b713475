//! auth-svc configuration, read once from the environment at start-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use platform::config::{self, ConfigError, Source};
use platform::db::DbConfig;
use platform::keyring::{DEFAULT_MAX_LIFETIME_SECS, KeyringConfig, TokenRules};

use crate::throttle::config::ThrottleConfig;

#[derive(Debug)]
pub struct Config {
    pub db: DbConfig,
    /// `JWT_SECRET` (+ `JWT_SECRET_PREVIOUS`) or `JWT_SECRET_ARN` (Secrets Manager).
    pub keyring: KeyringConfig,
    /// How often a Secrets Manager keyring is re-read (`JWT_KEYRING_REFRESH_SECS`); a token
    /// with a key id we do not hold also triggers an early re-read.
    pub keyring_refresh_interval: Duration,
    /// Token lifetime (`JWT_EXPIRATION`, seconds).
    pub token_lifetime_secs: i64,
    /// Lifetime of the access tokens of the client credentials grant (`API_TOKEN_LIFETIME_SECS`,
    /// seconds, default [`DEFAULT_API_TOKEN_LIFETIME_SECS`]).
    pub api_token_lifetime_secs: i64,
    /// Leeway (`JWT_LEEWAY_SECS`) and maximum lifetime (`JWT_MAX_LIFETIME_SECS`) when verifying.
    pub rules: TokenRules,
    pub listen: SocketAddr,
    /// `METRICS_ADDR`; `off` disables the metrics listener.
    pub metrics: Option<SocketAddr>,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Concurrent argon2 computations (`HASH_CONCURRENCY`, default: the CPU count).
    pub hash_concurrency: usize,
    /// How long a request waits for a hashing slot before it gets 503 (`HASH_QUEUE_TIMEOUT_MS`).
    pub hash_queue_timeout: Duration,
    /// Login and registration limits (`LOGIN_FAILURE_*`, `CLIENT_*`).
    pub throttle: ThrottleConfig,
}

pub const DEFAULT_PORT: u16 = 3000;
/// Default `API_TOKEN_LIFETIME_SECS`: 15 minutes, so a leaked access token of a machine client
/// is short-lived; the client exchanges its key again for the next one.
pub const DEFAULT_API_TOKEN_LIFETIME_SECS: i64 = 900;
/// Token lifetimes (`JWT_EXPIRATION`, `API_TOKEN_LIFETIME_SECS`) lie in this range, in seconds.
const TOKEN_LIFETIME_RANGE: std::ops::RangeInclusive<i64> = 60..=7 * 24 * 3600;
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9101";

impl Config {
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let keyring = KeyringConfig::from_source(src)?;
        let token_lifetime_secs: i64 = config::parse_or(src, "JWT_EXPIRATION", 3600)?;
        if !TOKEN_LIFETIME_RANGE.contains(&token_lifetime_secs) {
            return Err(ConfigError::new("JWT_EXPIRATION", "must be between 60 and 604800 seconds"));
        }
        let api_token_lifetime_secs: i64 =
            config::parse_or(src, "API_TOKEN_LIFETIME_SECS", DEFAULT_API_TOKEN_LIFETIME_SECS)?;
        if !TOKEN_LIFETIME_RANGE.contains(&api_token_lifetime_secs) {
            return Err(ConfigError::new("API_TOKEN_LIFETIME_SECS", "must be between 60 and 604800 seconds"));
        }
        let max_lifetime_secs: u64 = config::parse_or(src, "JWT_MAX_LIFETIME_SECS", DEFAULT_MAX_LIFETIME_SECS)?;
        if max_lifetime_secs < token_lifetime_secs as u64 {
            return Err(ConfigError::new(
                "JWT_MAX_LIFETIME_SECS",
                format!(
                    "{max_lifetime_secs} is shorter than JWT_EXPIRATION ({token_lifetime_secs}): every token issued would be refused"
                ),
            ));
        }
        if max_lifetime_secs < api_token_lifetime_secs as u64 {
            return Err(ConfigError::new(
                "JWT_MAX_LIFETIME_SECS",
                format!(
                    "{max_lifetime_secs} is shorter than API_TOKEN_LIFETIME_SECS ({api_token_lifetime_secs}): every API key token would be refused"
                ),
            ));
        }
        let leeway_secs: u64 = config::parse_or(src, "JWT_LEEWAY_SECS", platform::keyring::DEFAULT_LEEWAY_SECS)?;
        if leeway_secs > 60 {
            return Err(ConfigError::new("JWT_LEEWAY_SECS", "must be at most 60 seconds"));
        }
        let bind: IpAddr = config::parse_or(src, "BIND_ADDR", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
        let port: u16 = config::parse_or(src, "PORT", DEFAULT_PORT)?;
        let metrics = config::address_or_off(src, "METRICS_ADDR", DEFAULT_METRICS_ADDR)?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let hash_concurrency: usize = config::parse_or(src, "HASH_CONCURRENCY", cpus)?;
        if hash_concurrency == 0 {
            return Err(ConfigError::new("HASH_CONCURRENCY", "must be at least 1"));
        }
        let hash_queue_ms: u64 = config::parse_or(src, "HASH_QUEUE_TIMEOUT_MS", 2000)?;
        Ok(Self {
            db: DbConfig::from_source(src, "auth-svc")?,
            keyring,
            keyring_refresh_interval: config::seconds_or(src, "JWT_KEYRING_REFRESH_SECS", 60, 5..=3600)?,
            token_lifetime_secs,
            api_token_lifetime_secs,
            rules: TokenRules { leeway_secs, max_lifetime_secs },
            listen: SocketAddr::new(bind, port),
            metrics,
            request_timeout: config::seconds_or(src, "REQUEST_TIMEOUT_SECS", 10, 1..=300)?,
            shutdown_grace: config::seconds_or(src, "SHUTDOWN_GRACE_SECS", 20, 1..=110)?,
            hash_concurrency,
            hash_queue_timeout: Duration::from_millis(hash_queue_ms),
            throttle: ThrottleConfig::from_source(src)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<String, String> {
        [("DATABASE_URL", "postgres://u@127.0.0.1/db"), ("JWT_SECRET", "0123456789abcdef0123456789abcdef")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_guide() {
        let cfg = Config::from_source(&base()).unwrap();
        assert_eq!(cfg.token_lifetime_secs, 3600);
        assert_eq!(cfg.api_token_lifetime_secs, 900);
        assert_eq!(cfg.listen.port(), 3000);
        assert!(cfg.metrics.is_some());
    }

    #[test]
    fn short_secret_is_refused_by_name_without_echoing_it() {
        let mut env = base();
        env.insert("JWT_SECRET".into(), "too-short-secret".into());
        let err = Config::from_source(&env).unwrap_err();
        assert_eq!(err.key, "JWT_SECRET");
        assert!(!err.to_string().contains("too-short-secret"));
    }

    #[test]
    fn bad_expiration_and_port_are_named() {
        let mut env = base();
        env.insert("JWT_EXPIRATION".into(), "soon".into());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_EXPIRATION");
        let mut env = base();
        env.insert("PORT".into(), "70000".into());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "PORT");
        let mut env = base();
        env.remove("JWT_SECRET");
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_SECRET");
    }

    #[test]
    fn the_api_token_lifetime_is_bounded_like_jwt_expiration() {
        for bad in ["59", "604801", "-1", "soon"] {
            let mut env = base();
            env.insert("API_TOKEN_LIFETIME_SECS".into(), bad.into());
            assert_eq!(Config::from_source(&env).unwrap_err().key, "API_TOKEN_LIFETIME_SECS", "{bad}");
        }
        let mut env = base();
        env.insert("API_TOKEN_LIFETIME_SECS".into(), "60".into());
        assert_eq!(Config::from_source(&env).unwrap().api_token_lifetime_secs, 60);
        env.insert("API_TOKEN_LIFETIME_SECS".into(), "7200".into());
        env.insert("JWT_MAX_LIFETIME_SECS".into(), "3600".into());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_MAX_LIFETIME_SECS");
    }

    #[test]
    fn max_lifetime_must_cover_the_issued_lifetime() {
        let mut env = base();
        env.insert("JWT_EXPIRATION".into(), "7200".into());
        env.insert("JWT_MAX_LIFETIME_SECS".into(), "3600".into());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_MAX_LIFETIME_SECS");
        env.insert("JWT_MAX_LIFETIME_SECS".into(), "7200".into());
        assert_eq!(Config::from_source(&env).unwrap().rules.max_lifetime_secs, 7200);
        assert_eq!(Config::from_source(&base()).unwrap().rules.max_lifetime_secs, 604_800);
    }

    #[test]
    fn secrets_manager_keyring_is_an_alternative_to_the_environment() {
        let mut env = base();
        env.remove("JWT_SECRET");
        env.insert("JWT_SECRET_ARN".into(), "arn:aws:secretsmanager:us-east-1:1:secret:jwt".into());
        assert!(matches!(Config::from_source(&env).unwrap().keyring, KeyringConfig::SecretsManager { .. }));
        env.insert("JWT_SECRET".into(), "0123456789abcdef0123456789abcdef".into());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_SECRET_ARN");
    }

    /// Revocations are kept `RETAIN_AFTER_EXP_SECS` past `exp`: no leeway may be longer, or a
    /// revoked token would be accepted again after its entry is gone.
    #[test]
    fn no_leeway_outlasts_the_revocations() {
        let retain = platform::revocation::RETAIN_AFTER_EXP_SECS;
        let mut env = base();
        env.insert("JWT_LEEWAY_SECS".into(), retain.to_string());
        assert_eq!(Config::from_source(&env).unwrap().rules.leeway_secs, retain as u64);
        env.insert("JWT_LEEWAY_SECS".into(), (retain + 1).to_string());
        assert_eq!(Config::from_source(&env).unwrap_err().key, "JWT_LEEWAY_SECS");
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let cfg = Config::from_source(&base()).unwrap();
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }
}
