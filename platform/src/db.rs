//! PostgreSQL connection settings shared by both services: the guide's `DB_*` variables or
//! `DATABASE_URL`, a short pool acquire timeout, a statement timeout, and the migrator; and how
//! a failed query becomes a response ([`query`]).

pub mod query;

pub use query::{ConstraintExt, QueryError, QueryResultExt, is_unavailable};

use std::fmt;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use crate::config::{self, ConfigError, Source};

/// The schema, embedded in every binary. sqlx takes an advisory lock while migrating, so two
/// services starting at once against a fresh database do not race.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Clone)]
pub struct DbConfig {
    pub connect: PgConnectOptions,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

// PgConnectOptions' own Debug prints the password.
impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    pub fn from_source(src: &dyn Source, application_name: &str) -> Result<Self, ConfigError> {
        let connect = match config::raw(src, "DATABASE_URL") {
            Some(url) => {
                let options = url
                    .parse::<PgConnectOptions>()
                    // The URL may hold a password: do not echo it.
                    .map_err(|_| ConfigError::new("DATABASE_URL", "is not a valid postgres:// URL"))?;
                // DB_SSLMODE beside a URL overrides the URL's sslmode: an operator who sets
                // verify-full must get it, not a silently ignored setting.
                match config::raw(src, "DB_SSLMODE") {
                    Some(_) => options.ssl_mode(config::parse_or(src, "DB_SSLMODE", PgSslMode::Prefer)?),
                    None => options,
                }
            }
            None => {
                let ssl: PgSslMode = config::parse_or(src, "DB_SSLMODE", PgSslMode::Prefer)?;
                PgConnectOptions::new()
                    .host(&config::required_string(src, "DB_HOST")?)
                    .port(config::parse_or(src, "DB_PORT", 5432u16)?)
                    .database(&config::required_string(src, "DB_NAME")?)
                    .username(&config::required_string(src, "DB_USER")?)
                    .password(config::required_secret(src, "DB_PASSWORD")?.expose())
                    .ssl_mode(ssl)
            }
        };
        let statement_timeout = config::seconds_or(src, "DB_STATEMENT_TIMEOUT_SECS", 5, 1..=300)?;
        let connect = connect
            .application_name(application_name)
            .options([("statement_timeout", format!("{}", statement_timeout.as_millis()))]);
        let max_connections: u32 = config::parse_or(src, "DB_MAX_CONNECTIONS", 10)?;
        if max_connections == 0 {
            return Err(ConfigError::new("DB_MAX_CONNECTIONS", "must be at least 1"));
        }
        Ok(Self {
            connect,
            max_connections,
            acquire_timeout: config::seconds_or(src, "DB_ACQUIRE_TIMEOUT_SECS", 3, 1..=60)?,
            statement_timeout,
        })
    }

    /// A pool that connects on demand: the service starts, and recovers, without the database.
    pub fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .test_before_acquire(true)
            .connect_lazy_with(self.connect.clone())
    }
}

/// Waits (up to `deadline`) for the database to accept connections, then applies migrations.
pub async fn migrate_when_ready(pool: &PgPool, deadline: Duration) -> Result<(), sqlx::migrate::MigrateError> {
    let start = std::time::Instant::now();
    loop {
        match pool.acquire().await {
            Ok(_) => break,
            Err(e) if start.elapsed() < deadline && is_unavailable(&e) => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    MIGRATOR.run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn src(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn guide_variables_build_the_connection() {
        let cfg = DbConfig::from_source(
            &src(&[
                ("DB_HOST", "db.local"),
                ("DB_PORT", "6543"),
                ("DB_NAME", "tm"),
                ("DB_USER", "app"),
                ("DB_PASSWORD", "pw-XYZ"),
            ]),
            "test",
        )
        .unwrap();
        assert_eq!(cfg.connect.get_host(), "db.local");
        assert_eq!(cfg.connect.get_port(), 6543);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("pw-XYZ"), "{debug}");
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let err =
            DbConfig::from_source(&src(&[("DB_HOST", "h"), ("DB_NAME", "n"), ("DB_USER", "u")]), "t").unwrap_err();
        assert_eq!(err.key, "DB_PASSWORD");
        let err = DbConfig::from_source(&src(&[("DATABASE_URL", "sekrit-not-a-url")]), "t").unwrap_err();
        assert_eq!(err.key, "DATABASE_URL");
        assert!(!err.to_string().contains("sekrit"));
        let err = DbConfig::from_source(&src(&[("DATABASE_URL", "postgres://x/y"), ("DB_MAX_CONNECTIONS", "0")]), "t")
            .unwrap_err();
        assert_eq!(err.key, "DB_MAX_CONNECTIONS");
    }

    #[test]
    fn db_sslmode_applies_to_a_database_url_too() {
        let url = ("DATABASE_URL", "postgres://u:pw@db.local/n?sslmode=disable");
        let cfg = DbConfig::from_source(&src(&[url, ("DB_SSLMODE", "verify-full")]), "t").unwrap();
        assert!(format!("{:?}", cfg.connect).contains("VerifyFull"), "{:?}", cfg.connect);
        let cfg = DbConfig::from_source(&src(&[url]), "t").unwrap();
        assert!(format!("{:?}", cfg.connect).contains("Disable"), "the URL's own sslmode without DB_SSLMODE");
        let err = DbConfig::from_source(&src(&[url, ("DB_SSLMODE", "bogus")]), "t").unwrap_err();
        assert_eq!(err.key, "DB_SSLMODE");
    }
}
