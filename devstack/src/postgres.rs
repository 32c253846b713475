//! Throwaway PostgreSQL clusters from the machine's server binaries.
//!
//! PostgreSQL refuses to run as root, so as root the cluster is created and run as the
//! `postgres` user (or `nobody`). Clusters listen on 127.0.0.1 only, keep their socket in their
//! own directory, and trust local connections: they are for tests and local runs, never exposed.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the PostgreSQL server binaries are: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else `initdb` on `PATH`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
        bail!("PG_BIN={} has no initdb", dir.display());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with:\n    sudo apt-get install -y postgresql\n\
         or set PG_BIN to their directory, or set DATABASE_URL to use an existing server."
    )
}

/// The unprivileged account that runs PostgreSQL when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    name: &'static str,
    uid: u32,
    gid: u32,
}

/// `postgres` (the Debian package's account), else `nobody`, when we are root; `None` otherwise.
fn run_as_user() -> Option<RunAs> {
    if !rustix::process::getuid().is_root() {
        return None;
    }
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| uzers::get_user_by_name(name).map(|u| RunAs { name, uid: u.uid(), gid: u.primary_group_id() }))
}

/// `bin`, run as `user` when given (through `runuser`, which drops root's privileges for the
/// whole command line, also when a detached watchdog runs it; see [`Cluster::stop_command`]).
fn command(bin: &Path, user: Option<RunAs>) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user.name, "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// `chown -R uid:gid dir` (symbolic links themselves, not their targets).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if fs::symlink_metadata(dir)?.is_dir() {
        for entry in fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn run(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("could not run {what}"))?;
    if !out.status.success() {
        let _ = fs::OpenOptions::new().create(true).append(true).open(log).and_then(|mut f| {
            f.write_all(&out.stdout)?;
            f.write_all(&out.stderr)
        });
        bail!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A port that was free a moment ago on 127.0.0.1, for a process about to listen on it.
///
/// Picked at random below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), never
/// twice by this process: a port from the ephemeral range (what binding port 0 returns) can be
/// taken by any outgoing connection of the machine before the process that was handed it
/// binds it, which made tests fail with "Address already in use" under load.
pub fn free_port() -> Result<u16> {
    use rand::Rng as _;
    use std::collections::HashSet;
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Well above the registered services most machines run (PostgreSQL 5432, Prometheus 9090).
    let low = 20_000.min(ephemeral_start.saturating_sub(2_000));
    let mut rng = rand::thread_rng();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = rng.gen_range(low..ephemeral_start);
        if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    // A machine with that range full: fall back to what the kernel hands out.
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Tuning for a cluster: tests trade durability for speed; a local run keeps the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Fast,
}

/// A cluster in `dir`, listening on 127.0.0.1:`port`.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    user: Option<RunAs>,
    durability: Durability,
    stop_on_drop: bool,
}

impl Cluster {
    /// Creates the cluster in `dir` if it does not exist yet, and starts it on `port`.
    pub fn start(dir: &Path, port: u16, durability: Durability) -> Result<Self> {
        let cluster =
            Self { dir: dir.to_path_buf(), port, bin: bin_dir()?, user: run_as_user(), durability, stop_on_drop: true };
        cluster.init()?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        Self::data_dir(&self.dir)
    }

    /// Where the cluster created in `dir` keeps its data (`PGDATA`): `dir/data`, beside its
    /// log file and socket directory.
    pub fn data_dir(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn init(&self) -> Result<()> {
        fs::create_dir_all(self.dir.join("socket"))?;
        if let Some(user) = self.user {
            // The cluster's user must own its directory.
            chown_tree(&self.dir, user.uid, user.gid)
                .with_context(|| format!("could not give {} to {}", self.dir.display(), user.name))?;
        }
        if self.data().join("PG_VERSION").exists() {
            return Ok(());
        }
        let mut cmd = command(&self.bin.join("initdb"), self.user);
        cmd.arg("-D").arg(self.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]);
        if self.durability == Durability::Fast {
            cmd.arg("--no-sync");
        }
        run(cmd, "initdb", &self.log_file())
    }

    fn start_server(&self) -> Result<()> {
        self.remove_stale_lock_files()?;
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300",
            self.port,
            self.dir.join("socket").display()
        );
        if self.durability == Durability::Fast {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut cmd = command(&self.bin.join("pg_ctl"), self.user);
        cmd.arg("-D").arg(self.data()).arg("-l").arg(self.log_file()).args(["-o", &opts, "-w", "-t", "30", "start"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let status = cmd.stdin(Stdio::null()).status().context("could not run pg_ctl")?;
        if !status.success() {
            let log = fs::read_to_string(self.log_file()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            if log.contains("Address already in use") {
                bail!("PostgreSQL could not listen on 127.0.0.1:{}: the port is taken", self.port);
            }
            bail!("PostgreSQL did not start (log {}):\n{}", self.log_file().display(), tail.join("\n"));
        }
        wait_for_port(self.port, Duration::from_secs(30))
    }

    /// Removes `postmaster.pid` and the socket lock files left by a server that is gone
    /// (killed, or a machine that crashed). PostgreSQL refuses to start while the PID in them
    /// belongs to any process, and after a crash that PID may be a zombie or reused by an
    /// unrelated process. A live postgres on this directory is an error instead.
    fn remove_stale_lock_files(&self) -> Result<()> {
        let mut locks = vec![self.data().join("postmaster.pid")];
        if let Ok(entries) = fs::read_dir(self.dir.join("socket")) {
            locks.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".lock"))),
            );
        }
        for lock in locks {
            let Ok(text) = fs::read_to_string(&lock) else { continue };
            let pid = text.lines().next().and_then(|l| l.trim().trim_start_matches('-').parse::<u32>().ok());
            if let Some(pid) = pid
                && is_live_postgres(pid)
            {
                bail!(
                    "PostgreSQL (pid {pid}) is already running on {}: is another devstack using this directory?",
                    self.dir.display()
                );
            }
            fs::remove_file(&lock).with_context(|| format!("could not remove the stale {}", lock.display()))?;
        }
        Ok(())
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping the data.
    pub fn stop(&self) -> Result<()> {
        run(self.pg_ctl_stop(&["-w", "-t", "30"]), "pg_ctl stop", &self.log_file())
    }

    /// `pg_ctl stop -m fast` for this cluster, run as its user: for a watchdog that outlives
    /// this process (the tests' shared cluster).
    pub fn stop_command(&self) -> Command {
        self.pg_ctl_stop(&[])
    }

    /// `pg_ctl -D <data> -m fast <extra> stop`, as the cluster's user.
    fn pg_ctl_stop(&self, extra: &[&str]) -> Command {
        let mut cmd = command(&self.bin.join("pg_ctl"), self.user);
        cmd.arg("-D").arg(self.data()).args(["-m", "fast"]).args(extra).arg("stop");
        cmd
    }

    /// `postmaster.pid`: present while the server runs.
    pub fn pid_file(&self) -> PathBuf {
        self.data().join("postmaster.pid")
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) -> Result<()> {
        self.start_server()
    }

    /// Leaves the server running when this handle is dropped.
    pub fn keep_running(mut self) {
        self.stop_on_drop = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop && self.pid_file().exists() {
            let _ = self.stop();
        }
    }
}

/// Whether `pid` is a running (not zombie) process named `postgres`.
fn is_live_postgres(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // "<pid> (<comm>) <state> ...": comm may contain spaces, so split at the last ')'.
    let Some((head, rest)) = stat.rsplit_once(')') else { return false };
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    let state = rest.trim_start().chars().next().unwrap_or('?');
    comm == "postgres" && state != 'Z' && state != 'X'
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}")
}
