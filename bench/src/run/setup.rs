//! Before the first cell: the binaries (built when asked), the run directory, the running
//! stack and the seeded data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use devstack::postgres::Durability;

use crate::options::Options;
use crate::seed;
use crate::stack::{self, BenchStack};
use crate::wrk;

/// The bench crate's directory (lua/ and results/ are in it).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// auth-svc, task-svc and gateway: `--bin-dir`, else `target/<profile>` beside this binary,
/// else this binary's own directory.
fn bin_dir(o: &Options) -> Result<PathBuf> {
    if let Some(dir) = &o.bin_dir {
        return Ok(dir.clone());
    }
    let own = devstack::process::bin_dir()?;
    match &o.profile {
        Some(profile) => Ok(own.parent().context("binary directory has no parent")?.join(profile)),
        None => Ok(own),
    }
}

/// Builds the services in release with the workspace-wide feature resolution of
/// `cargo run --release --bin bench` (devstack::build): it compiles no dependency twice.
fn build_release() -> Result<()> {
    let mut cmd = devstack::build::services(devstack::build::Profile::Release);
    eprintln!("==> {}", devstack::build::describe(&cmd));
    if !cmd.status()?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

/// Where a run's inputs and outputs are.
pub struct Dirs {
    /// auth-svc, task-svc and gateway.
    pub bin_dir: PathBuf,
    /// Logs, PostgreSQL's data, the gateways' configs and the seeded data of this run.
    pub run_dir: PathBuf,
    pub lua_dir: PathBuf,
}

/// Checks for wrk, builds the services when the options ask for release binaries that may be
/// stale, and creates the run directory.
pub fn prepare(o: &Options) -> Result<Dirs> {
    wrk::check_installed()?;
    if !o.no_build && o.bin_dir.is_none() && o.profile.as_deref().is_none_or(|p| p == "release") {
        build_release()?;
    }
    let bin_dir = bin_dir(o)?;
    let run_dir = std::env::temp_dir().join(format!("taskmgmt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("==> run directory {} (binaries from {})", run_dir.display(), bin_dir.display());
    Ok(Dirs { bin_dir, run_dir, lua_dir: manifest_dir().join("lua") })
}

/// Starts every process of the stack, prints their start-to-ready times and returns them
/// (ms, by process name) with the stack.
pub async fn start(o: &Options, dirs: &Dirs) -> Result<(BenchStack, BTreeMap<String, f64>)> {
    let self_exe = std::env::current_exe()?;
    let sidecar = devstack::stack::repo_root().join("sidecar.toml");
    let start = stack::StartOptions {
        bin_dir: &dirs.bin_dir,
        self_exe: &self_exe,
        run_dir: &dirs.run_dir,
        sidecar: &sidecar,
        durability: if o.durable { Durability::Durable } else { Durability::Fast },
        extra_env: &o.env,
        sidecar_set: &o.sidecar_set,
        variants: &crate::options::variant_paths(&o.variants),
        baseline_bin: o.baseline_bin.as_deref(),
        haproxy: &o.haproxy,
        revocations: o.revocations,
        vpc_delay: o.vpc_delay,
        unix_upstream: o.unix_upstream,
        callgrind: o.callgrind > 0,
    };
    let stack = stack::start(&start)
        .await
        .with_context(|| format!("starting the stack (logs in {})", dirs.run_dir.display()))?;
    let ready_ms: BTreeMap<String, f64> =
        stack.services().iter().map(|s| (s.name.to_owned(), s.ready.as_secs_f64() * 1000.0)).collect();
    for (name, ms) in &ready_ms {
        eprintln!("    {name:<16} ready {ms:.1} ms after spawn");
    }
    Ok((stack, ready_ms))
}

/// Seeds the users and their tasks, and writes them to the run directory for the Lua scripts.
pub async fn seed(o: &Options, stack: &BenchStack, run_dir: &Path) -> Result<()> {
    eprintln!("==> seeding {} users x {} tasks", o.users, o.tasks_per_user);
    let users =
        seed::seed(&stack.auth.url(), &stack.task.url(), &stack.database_url, o.users, o.tasks_per_user).await?;
    seed::write_data(run_dir, &users)
}
