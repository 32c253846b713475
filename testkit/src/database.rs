//! The PostgreSQL server the tests share, a fresh database per test ([`TestDatabase`]), and
//! waiting for a statement that is blocked on a lock ([`TestDatabase::wait_for_lock_waiter`]).
//!
//! `DATABASE_URL`, when set, names the server to use. Otherwise the first test starts a
//! cluster in the temp directory (a file lock keeps concurrent test processes from racing),
//! later tests reuse it, and a watchdog stops it after 15 idle minutes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use devstack::postgres::{Cluster, Durability, free_port, wait_for_port};
use sqlx::{Connection, Executor, PgConnection, PgPool};

const IDLE_STOP_SECS: u64 = 900;

fn shared_dir() -> PathBuf {
    std::env::temp_dir().join("taskmgmt-test-pg")
}

/// The admin URL (ending in `/postgres`) of the server the tests use.
pub fn server_url() -> Result<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(url);
    }
    let dir = shared_dir();
    fs::create_dir_all(&dir)?;
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.with_extension("lock"))?;
    lock.lock()?;
    let heartbeat = dir.with_extension("heartbeat");
    fs::write(&heartbeat, b"")?;
    let port_file = dir.with_extension("port");
    if let Some(port) = fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok())
        && dir.join("data/postmaster.pid").exists()
        && wait_for_port(port, Duration::from_millis(300)).is_ok()
    {
        return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    }
    let port = free_port()?;
    let cluster = Cluster::start(&dir, port, Durability::Fast)?;
    fs::write(&port_file, port.to_string())?;
    spawn_idle_watchdog(&cluster, &heartbeat);
    let url = cluster.url("postgres");
    cluster.keep_running();
    Ok(url)
}

/// A detached shell loop (it must outlive the test process that started the cluster) that
/// stops the cluster once no test has touched `heartbeat` for [`IDLE_STOP_SECS`].
fn spawn_idle_watchdog(cluster: &Cluster, heartbeat: &Path) {
    let stop_cmd = format!("{:?}", cluster.stop_command()).replace('"', "");
    let script = format!(
        "while sleep 20; do [ -f '{pid}' ] || exit 0; age=$(( $(date +%s) - $(stat -c %Y '{hb}') )); \
         if [ $age -gt {IDLE_STOP_SECS} ]; then {stop_cmd} >/dev/null 2>&1; exit 0; fi; done",
        pid = cluster.pid_file().display(),
        hb = heartbeat.display(),
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A new, migrated database for one test, dropped when this handle is dropped.
pub struct TestDatabase {
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A new database with the schema (the workspace's migrations).
    pub async fn new() -> Self {
        let db = Self::empty().await;
        platform::db::MIGRATOR.run(&db.pool).await.expect("migrations apply");
        db
    }

    /// A new database without the schema, for tests of start-up migration.
    pub async fn empty() -> Self {
        let admin_url = tokio::task::spawn_blocking(server_url)
            .await
            .expect("server_url task")
            .expect("a PostgreSQL server for the tests");
        let name = format!("t_{}", random_suffix());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test server");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
        let url = replace_database(&admin_url, &name);
        let pool = PgPool::connect(&url).await.expect("connect to the test database");
        Self { url, pool, admin_url, name }
    }

    /// Waits until a backend connected to this database waits for a lock
    /// (`pg_stat_activity.wait_event_type = 'Lock'`): the request under test is then inside its
    /// statement, blocked on what the test holds. Panics after `deadline`.
    pub async fn wait_for_lock_waiter(&self, deadline: Duration) {
        let start = Instant::now();
        loop {
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                WHERE datname = current_database() AND wait_event_type = 'Lock')",
            )
            .fetch_one(&self.pool)
            .await
            .expect("pg_stat_activity reads");
            if waiting {
                return;
            }
            assert!(start.elapsed() < deadline, "no statement waited for a lock within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                    let _ = c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                }
            });
        })
        .join();
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

/// `url` with its database name replaced.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(replace_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(replace_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(replace_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
