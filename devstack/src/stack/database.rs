//! The run's database: a PostgreSQL cluster of its own, or the server `DATABASE_URL` names.

use std::net::{Ipv4Addr, TcpListener as StdListener};

use anyhow::{Context, Result, bail};
use sqlx::{Connection, Executor, PgConnection};

use super::child::{Ports, RunDir};
use super::{Options, Storage};
use crate::logs::LogSink;
use crate::postgres::{Cluster, Durability};

/// The database the local run uses inside its own cluster.
pub const DATABASE_NAME: &str = "taskmgmt";

/// The database a run uses: the cluster it started (if any), its URL and how safe its data is.
pub(super) struct Database {
    pub(super) cluster: Option<Cluster>,
    pub(super) url: String,
    pub(super) storage: Storage,
}

/// Uses `opts.database_url`, or starts a cluster in `run_dir/postgres` (on `opts.pg_port`, else
/// the next internal port) and creates [`DATABASE_NAME`] in it. The services migrate it on start.
pub(super) async fn start(opts: &Options, ports: &mut Ports, run_dir: &RunDir, logs: &LogSink) -> Result<Database> {
    if let Some(url) = &opts.database_url {
        logs.line("devstack", "using the database from DATABASE_URL / --database-url");
        return Ok(Database { cluster: None, url: url.clone(), storage: Storage::External });
    }
    let port = match opts.pg_port {
        Some(p) => {
            if StdListener::bind((Ipv4Addr::LOCALHOST, p)).is_err() {
                bail!("127.0.0.1:{p} (PostgreSQL) is already in use; choose another --pg-port");
            }
            p
        }
        None => ports.take("postgres")?,
    };
    ports.used.insert(port);
    // A kept data directory is a database worth keeping: PostgreSQL's durable
    // defaults (fsync, synchronous_commit, full_page_writes). The throwaway
    // cluster is removed on exit anyway, so it trades durability for speed.
    let (durability, storage) = match &opts.data_dir {
        Some(_) => (Durability::Durable, Storage::DataDir(run_dir.path.join("postgres"))),
        None => (Durability::Fast, Storage::Throwaway),
    };
    let dir = run_dir.path.join("postgres");
    logs.line(
        "devstack",
        &format!(
            "starting PostgreSQL on 127.0.0.1:{port} ({}; data in {})",
            storage.describe(),
            Cluster::data_dir(&dir).display()
        ),
    );
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir, port, durability))
        .await
        .context("PostgreSQL start-up task")??;
    let url = cluster.url(DATABASE_NAME);
    create_database(&cluster.url("postgres"), DATABASE_NAME).await?;
    logs.line("devstack", &format!("PostgreSQL is up: {url} (log {})", cluster.log_file().display()));
    Ok(Database { cluster: Some(cluster), url, storage })
}

/// Creates `name` in the cluster unless it exists (a kept data directory already has it).
async fn create_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await.context("could not connect to the new PostgreSQL")?;
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1").bind(name).fetch_optional(&mut conn).await?;
    if exists.is_none() {
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    }
    Ok(())
}
