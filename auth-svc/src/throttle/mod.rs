//! Throttling: login and registration limits, answered with 429 + `Retry-After` and the
//! contract's error body before any argon2 work, so neither a flood nor password guessing can
//! occupy the hashing threads; and a per-account limit on logout and logout-all, so a stolen
//! token cannot end its owner's sessions in a loop.
//!
//! - per client ([`client`]): login and register requests per source address, in this task's
//!   memory; one source cannot fill the hashing pool.
//! - per account ([`account`]): failed logins per normalised username, in PostgreSQL, shared by
//!   every task; unknown and existing names are counted and refused alike.
//! - per account on logout ([`Throttle::check_logout`]): logout and logout-all requests per user
//!   id, a GCRA bucket in this task's memory (`LOGOUT_RATE_PER_MIN`, `LOGOUT_BURST`).
//! - per API key on `POST /auth/token` ([`Throttle::check_api_key`]): exchanges per `client_id`,
//!   a GCRA bucket in this task's memory (`TOKEN_RATE_PER_MIN`, `TOKEN_BURST`). Taken after the
//!   client authenticated, so nobody who merely knows a `client_id` (it is public) can use up
//!   its budget; token requests also take from their source's per-client budget, like logins.
//! - per account on API key changes ([`Throttle::check_api_key_change`]): creations and
//!   deletions per user id (`API_KEY_RATE_PER_MIN`, `API_KEY_BURST`), so a stolen login token
//!   cannot churn keys, each deletion an entry every gateway holds.
//!
//! Refusals count in `auth_login_throttled_total{scope="account"|"client"|"logout"|"token"|"api_keys"}`
//! (the client scope covers register and token requests as well).
//!
//! The throttle answers in its own terms ([`Throttled`], [`ThrottleError`], [`LoginOutcome`]);
//! the route layer turns them into responses and tells it how a login ended.

pub mod account;
pub mod client;
pub mod config;

use std::sync::Arc;
use std::time::Duration;

use platform::db::QueryError;
use prometheus::{IntCounterVec, Opts, Registry};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::user::{LoginName, UsernameKey};
use account::{AccountLimiter, Admission};
use client::{ClientAddress, ClientLimiter, KeyedLimiter};
use config::ThrottleConfig;

/// How often expired state is dropped: quiet sources' buckets and `login_failures` rows whose
/// window is over.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// Which limit refused a request; the `scope` label of `auth_login_throttled_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Client,
    Logout,
    Token,
    ApiKeys,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Self::Account, Self::Client, Self::Logout, Self::Token, Self::ApiKeys];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Client => "client",
            Self::Logout => "logout",
            Self::Token => "token",
            Self::ApiKeys => "api_keys",
        }
    }
}

/// A 429: which limit, and the whole seconds until it allows again (`Retry-After`, at least 1).
/// `Display` is the error body's message; the account message is the same for every username,
/// existing or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Throttled {
    pub scope: Scope,
    pub retry_after_secs: u64,
}

impl Throttled {
    fn message(&self) -> String {
        let secs = self.retry_after_secs;
        match self.scope {
            Scope::Account => format!("Too many failed logins for this username, retry in {secs} seconds"),
            Scope::Client => {
                format!("Too many login, registration or token requests from this address, retry in {secs} seconds")
            }
            Scope::Logout => format!("Too many logout requests for this account, retry in {secs} seconds"),
            Scope::Token => format!("Too many token requests for this API key, retry in {secs} seconds"),
            Scope::ApiKeys => format!("Too many API key changes for this account, retry in {secs} seconds"),
        }
    }
}

/// Why a login may not go on: a limit is used up, or the account's count could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error(transparent)]
    Throttled(#[from] Throttled),
    #[error(transparent)]
    Database(#[from] QueryError),
}

/// How a counted login attempt ended, for [`LoginAttempt::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password was right: the account's count starts from zero.
    Succeeded,
    /// A password was checked and did not match (or there is no such account): it stays counted.
    Failed,
    /// No password was checked (no hashing slot, database trouble): the count is given back.
    Unchecked,
}

/// Seconds for `Retry-After` (RFC 9110 10.2.3): `wait` rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

pub struct Throttle {
    client: Option<ClientLimiter>,
    account: AccountLimiter,
    /// Logout and logout-all requests per user id.
    logout: KeyedLimiter<i64>,
    /// Token requests per API key `client_id`.
    token: KeyedLimiter<String>,
    /// API key creations and deletions per user id.
    api_keys: KeyedLimiter<i64>,
    throttled: IntCounterVec,
}

impl Throttle {
    /// Builds both limits and registers `auth_login_throttled_total` in `registry`.
    pub fn new(config: &ThrottleConfig, registry: &Registry) -> Self {
        let throttled = IntCounterVec::new(
            Opts::new(
                "auth_login_throttled_total",
                "Requests answered 429, by the limit that refused them: account (failed logins per \
                 username), client (login/register/token requests per source address), logout (logouts per \
                 account), token (token requests per API key) or api_keys (API key changes per account)",
            ),
            &["scope"],
        )
        .expect("valid metric definition");
        for scope in Scope::ALL {
            // Both series exist from the start, so rate() and alerts see a 0 before the first 429.
            throttled.with_label_values(&[scope.as_str()]);
        }
        if let Err(e) = registry.register(Box::new(throttled.clone())) {
            tracing::warn!(error = %e, "auth_login_throttled_total not registered");
        }
        Self {
            client: config.client.map(ClientLimiter::new),
            account: AccountLimiter::new(config.login_failure_limit, config.login_failure_window),
            logout: KeyedLimiter::new(config.logout),
            token: KeyedLimiter::new(config.token),
            api_keys: KeyedLimiter::new(config.api_keys),
            throttled,
        }
    }

    fn refuse(&self, scope: Scope, wait: Duration) -> Throttled {
        self.throttled.with_label_values(&[scope.as_str()]).inc();
        Throttled { scope, retry_after_secs: retry_after_secs(wait) }
    }

    /// Takes one request from the source's budget for the hashing endpoints; refused when it is
    /// used up. Requests without a source (in-process callers, never a socket) are not limited.
    pub fn check_client(&self, source: ClientAddress) -> Result<(), Throttled> {
        match (&self.client, source.0) {
            (Some(limiter), Some(ip)) => limiter.check(ip).map_err(|wait| self.refuse(Scope::Client, wait)),
            _ => Ok(()),
        }
    }

    /// Takes one logout (or logout-all) from `user_id`'s budget; refused when it is used up.
    pub fn check_logout(&self, user_id: i64) -> Result<(), Throttled> {
        self.logout.check(user_id).map_err(|wait| self.refuse(Scope::Logout, wait))
    }

    /// Takes one token request from the API key `client_id`'s budget (call it once the client
    /// has authenticated); refused when it is used up.
    pub fn check_api_key(&self, client_id: &str) -> Result<(), Throttled> {
        self.token.check(client_id.to_owned()).map_err(|wait| self.refuse(Scope::Token, wait))
    }

    /// Takes one API key creation or deletion from `user_id`'s budget; refused when it is used up.
    pub fn check_api_key_change(&self, user_id: i64) -> Result<(), Throttled> {
        self.api_keys.check(user_id).map_err(|wait| self.refuse(Scope::ApiKeys, wait))
    }

    /// Counts a login attempt for `username` (by its [`UsernameKey`]) before its password is
    /// checked; refused when the account's limit for the current window is used up.
    pub async fn begin_login(&self, db: &PgPool, username: &LoginName) -> Result<LoginAttempt<'_>, ThrottleError> {
        let key = username.key();
        match self.account.begin(db, &key).await? {
            Admission::Admitted => Ok(LoginAttempt { throttle: self, key }),
            Admission::Refused { retry_after } => Err(self.refuse(Scope::Account, retry_after).into()),
        }
    }

    /// Drops expired state every [`HOUSEKEEPING_INTERVAL`] until aborted.
    pub fn spawn_housekeeping(self: &Arc<Self>, db: PgPool) -> JoinHandle<()> {
        let throttle = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                throttle.housekeeping(&db).await;
            }
        })
    }

    /// One round of [`Self::spawn_housekeeping`].
    pub async fn housekeeping(&self, db: &PgPool) {
        if let Some(limiter) = &self.client {
            limiter.retain_recent();
        }
        self.logout.retain_recent();
        self.token.retain_recent();
        self.api_keys.retain_recent();
        match self.account.delete_expired(db).await {
            Ok(n) => tracing::debug!(deleted = n, "expired login failure counts deleted"),
            Err(e) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not delete expired login failure counts");
            }
        }
    }
}

/// A counted login attempt. Dropped without [`LoginAttempt::finish`] (the request was
/// cancelled), it stays counted as a failure.
pub struct LoginAttempt<'a> {
    throttle: &'a Throttle,
    key: UsernameKey,
}

impl LoginAttempt<'_> {
    /// Settles the count by the login's outcome (see [`LoginOutcome`]). Failing to settle is
    /// logged, never the request's failure.
    pub async fn finish(self, db: &PgPool, outcome: LoginOutcome) {
        let account = &self.throttle.account;
        let settled = match outcome {
            LoginOutcome::Succeeded => account.reset(db, &self.key).await,
            LoginOutcome::Failed => Ok(()),
            LoginOutcome::Unchecked => account.refund(db, &self.key).await,
        };
        if let Err(e) = settled {
            tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not update the login failure count");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2, "30 a minute: one every 2 s");
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(999)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn the_messages_name_the_limit_and_the_wait() {
        let account = Throttled { scope: Scope::Account, retry_after_secs: 60 };
        assert_eq!(account.to_string(), "Too many failed logins for this username, retry in 60 seconds");
        let client = Throttled { scope: Scope::Client, retry_after_secs: 2 };
        assert_eq!(
            client.to_string(),
            "Too many login, registration or token requests from this address, retry in 2 seconds"
        );
        let token = Throttled { scope: Scope::Token, retry_after_secs: 5 };
        assert_eq!(token.to_string(), "Too many token requests for this API key, retry in 5 seconds");
        let keys = Throttled { scope: Scope::ApiKeys, retry_after_secs: 6 };
        assert_eq!(keys.to_string(), "Too many API key changes for this account, retry in 6 seconds");
        let logout = Throttled { scope: Scope::Logout, retry_after_secs: 10 };
        assert_eq!(logout.to_string(), "Too many logout requests for this account, retry in 10 seconds");
    }
}
