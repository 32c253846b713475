//! The throttling settings, read with the rest of auth-svc's configuration.

use std::num::NonZeroU32;
use std::time::Duration;

use platform::config::{self, ConfigError, Source};

/// Default `LOGIN_FAILURE_LIMIT`: failed logins per username and window before 429. Ten leaves
/// room for a user's typos and a stale password manager entry (Auth0's brute-force protection
/// uses the same default); with the default window an online guesser gets at most 40 guesses an
/// hour per account instead of the whole hashing capacity.
pub const DEFAULT_LOGIN_FAILURE_LIMIT: u32 = 10;
/// Default `LOGIN_FAILURE_WINDOW_SECS` (15 minutes): the longest a locked-out user waits.
pub const DEFAULT_LOGIN_FAILURE_WINDOW_SECS: u64 = 900;
/// Default `CLIENT_RATE_PER_MIN`: login and register requests one source address may make per
/// minute, per auth-svc task. Generous for people (a login is a few requests an hour), while a
/// single source gets half a hash a second, 1-3% of one core (a hash takes 20-50 ms).
pub const DEFAULT_CLIENT_RATE_PER_MIN: u32 = 30;
/// Default `CLIENT_BURST`: requests a quiet source may make at once before the rate applies.
pub const DEFAULT_CLIENT_BURST: u32 = 10;
/// Default `LOGOUT_RATE_PER_MIN`: logout and logout-all requests per account and minute, per
/// auth-svc task. A person logs out a few times a day; a stolen token that keeps ending its
/// owner's sessions is held to one every 10 s.
pub const DEFAULT_LOGOUT_RATE_PER_MIN: u32 = 6;
/// Default `LOGOUT_BURST`: logouts an account may make at once before the rate applies.
pub const DEFAULT_LOGOUT_BURST: u32 = 3;

/// Default `TOKEN_RATE_PER_MIN`: token requests per API key and minute, per auth-svc task. A
/// client needs one token per `API_TOKEN_LIFETIME_SECS` (15 minutes by default); one every 5 s
/// leaves room for a fleet of workers sharing a key, and stops one that asks in a loop.
pub const DEFAULT_TOKEN_RATE_PER_MIN: u32 = 12;
/// Default `TOKEN_BURST`: token requests a key may make at once before the rate applies.
pub const DEFAULT_TOKEN_BURST: u32 = 5;

/// Default `API_KEY_RATE_PER_MIN`: API key creations and deletions per account and minute, per
/// auth-svc task. A person changes keys a few times a month; each deletion is a revocation entry
/// every gateway holds for the token lifetime.
pub const DEFAULT_API_KEY_RATE_PER_MIN: u32 = 10;
/// Default `API_KEY_BURST`: key changes an account may make at once (cleaning up several keys).
pub const DEFAULT_API_KEY_BURST: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins per normalised username within one window before 429 (`LOGIN_FAILURE_LIMIT`).
    pub login_failure_limit: u32,
    /// The window's length (`LOGIN_FAILURE_WINDOW_SECS`); it starts with the first failure.
    pub login_failure_window: Duration,
    /// The per-source limit on the hashing endpoints; `None` when `CLIENT_RATE_PER_MIN=off`.
    pub client: Option<ClientQuota>,
    /// The per-account limit on logout and logout-all (`LOGOUT_RATE_PER_MIN`, `LOGOUT_BURST`).
    pub logout: ClientQuota,
    /// The per-key limit on `POST /auth/token` (`TOKEN_RATE_PER_MIN`, `TOKEN_BURST`).
    pub token: ClientQuota,
    /// The per-account limit on API key creations and deletions (`API_KEY_RATE_PER_MIN`,
    /// `API_KEY_BURST`).
    pub api_keys: ClientQuota,
}

/// A GCRA quota: `per_minute` requests a minute on average, `burst` at once (per source for
/// [`ThrottleConfig::client`], per account for [`ThrottleConfig::logout`], per API key for
/// [`ThrottleConfig::token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientQuota {
    pub per_minute: NonZeroU32,
    pub burst: NonZeroU32,
}

impl ThrottleConfig {
    /// Reads `LOGIN_FAILURE_LIMIT` (1..=1000000), `LOGIN_FAILURE_WINDOW_SECS` (1..=86400),
    /// `CLIENT_RATE_PER_MIN` (1..=60000 or `off`), `CLIENT_BURST` (1..=10000),
    /// `LOGOUT_RATE_PER_MIN` (1..=60000), `LOGOUT_BURST` (1..=10000), `TOKEN_RATE_PER_MIN`
    /// (1..=60000), `TOKEN_BURST` (1..=10000), `API_KEY_RATE_PER_MIN` (1..=60000) and
    /// `API_KEY_BURST` (1..=10000).
    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let login_failure_limit = in_range(src, "LOGIN_FAILURE_LIMIT", DEFAULT_LOGIN_FAILURE_LIMIT, 1_000_000)?;
        let login_failure_window =
            config::seconds_or(src, "LOGIN_FAILURE_WINDOW_SECS", DEFAULT_LOGIN_FAILURE_WINDOW_SECS, 1..=86_400)?;
        let off = config::raw(src, "CLIENT_RATE_PER_MIN").is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
        let client = if off {
            None
        } else {
            Some(ClientQuota {
                per_minute: in_range(src, "CLIENT_RATE_PER_MIN", DEFAULT_CLIENT_RATE_PER_MIN, 60_000)?,
                burst: in_range(src, "CLIENT_BURST", DEFAULT_CLIENT_BURST, 10_000)?,
            })
        };
        let logout = ClientQuota {
            per_minute: in_range(src, "LOGOUT_RATE_PER_MIN", DEFAULT_LOGOUT_RATE_PER_MIN, 60_000)?,
            burst: in_range(src, "LOGOUT_BURST", DEFAULT_LOGOUT_BURST, 10_000)?,
        };
        let token = ClientQuota {
            per_minute: in_range(src, "TOKEN_RATE_PER_MIN", DEFAULT_TOKEN_RATE_PER_MIN, 60_000)?,
            burst: in_range(src, "TOKEN_BURST", DEFAULT_TOKEN_BURST, 10_000)?,
        };
        let api_keys = ClientQuota {
            per_minute: in_range(src, "API_KEY_RATE_PER_MIN", DEFAULT_API_KEY_RATE_PER_MIN, 60_000)?,
            burst: in_range(src, "API_KEY_BURST", DEFAULT_API_KEY_BURST, 10_000)?,
        };
        Ok(Self {
            login_failure_limit: login_failure_limit.get(),
            login_failure_window,
            client,
            logout,
            token,
            api_keys,
        })
    }
}

fn in_range(src: &dyn Source, key: &str, default: u32, max: u32) -> Result<NonZeroU32, ConfigError> {
    let value: u32 = config::parse_or(src, key, default)?;
    NonZeroU32::new(value)
        .filter(|v| v.get() <= max)
        .ok_or_else(|| ConfigError::new(key, format!("{value} is out of range 1..={max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn src(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults() {
        let cfg = ThrottleConfig::from_source(&src(&[])).unwrap();
        assert_eq!(cfg.login_failure_limit, 10);
        assert_eq!(cfg.login_failure_window, Duration::from_secs(900));
        let client = cfg.client.unwrap();
        assert_eq!((client.per_minute.get(), client.burst.get()), (30, 10));
        assert_eq!((cfg.logout.per_minute.get(), cfg.logout.burst.get()), (6, 3));
        assert_eq!((cfg.token.per_minute.get(), cfg.token.burst.get()), (12, 5));
        assert_eq!((cfg.api_keys.per_minute.get(), cfg.api_keys.burst.get()), (10, 10));
        let cfg = ThrottleConfig::from_source(&src(&[("LOGOUT_RATE_PER_MIN", "12"), ("LOGOUT_BURST", "1")])).unwrap();
        assert_eq!((cfg.logout.per_minute.get(), cfg.logout.burst.get()), (12, 1));
    }

    #[test]
    fn client_limit_can_be_turned_off() {
        let cfg = ThrottleConfig::from_source(&src(&[("CLIENT_RATE_PER_MIN", "OFF"), ("CLIENT_BURST", "x")])).unwrap();
        assert_eq!(cfg.client, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("LOGIN_FAILURE_LIMIT", "0"),
            ("LOGIN_FAILURE_LIMIT", "five"),
            ("LOGIN_FAILURE_LIMIT", "1000001"),
            ("LOGIN_FAILURE_WINDOW_SECS", "0"),
            ("LOGIN_FAILURE_WINDOW_SECS", "86401"),
            ("CLIENT_RATE_PER_MIN", "0"),
            ("CLIENT_RATE_PER_MIN", "-3"),
            ("CLIENT_BURST", "0"),
            ("CLIENT_BURST", "10001"),
            ("LOGOUT_RATE_PER_MIN", "0"),
            ("LOGOUT_RATE_PER_MIN", "60001"),
            ("LOGOUT_BURST", "0"),
            ("LOGOUT_BURST", "x"),
            ("TOKEN_RATE_PER_MIN", "0"),
            ("TOKEN_RATE_PER_MIN", "60001"),
            ("TOKEN_BURST", "0"),
            ("TOKEN_BURST", "10001"),
            ("API_KEY_RATE_PER_MIN", "0"),
            ("API_KEY_BURST", "10001"),
        ] {
            let err = ThrottleConfig::from_source(&src(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key, "{key}={value}: {err}");
        }
    }
}
