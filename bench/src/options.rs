//! Command-line options (clap): the bench's own flags, resolved into [`Options`] (the defaults
//! that depend on `--quick` applied), and the two internal subcommands that run one hop in a
//! process of its own.

use std::net::SocketAddr;
use std::num::ParseIntError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The request paths side by side on the real binaries (see docs/benchmarks.md).
///
/// Starts a throwaway PostgreSQL cluster and every process on loopback, seeds users and tasks,
/// drives every workload through every path with wrk, prints markdown tables and writes JSON.
#[derive(Debug, Parser)]
#[command(name = "bench", args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub internal: Option<Internal>,
    #[command(flatten)]
    pub flags: Flags,
}

/// The hops the bench runs as processes of their own (it starts them itself).
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// (internal) the per-request validation proxy: asks auth-svc on every request.
    ValidateProxy {
        /// Where it listens.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// auth-svc's base URL.
        #[arg(long, value_name = "URL")]
        auth: String,
        /// task-svc's base URL.
        #[arg(long, value_name = "URL")]
        upstream: String,
    },
    /// (internal) devstack's front door in a process of its own.
    FrontDoor {
        /// Where it listens.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// Where `/tasks*` goes.
        #[arg(long, value_name = "ADDR")]
        gateway: SocketAddr,
        /// Where `/auth*` goes.
        #[arg(long, value_name = "ADDR")]
        auth: SocketAddr,
    },
}

/// How the gateways and HAProxy reach task-svc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamTransport {
    /// TCP, as shipped.
    Tcp,
    /// task-svc's Unix socket.
    Unix,
}

/// `--env PROC:KEY=VALUE`: one more environment variable for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// auth-svc, task-svc, gateway, gateway-nocache, ... (a service's name in the stack).
    pub process: String,
    pub key: String,
    pub value: String,
}

impl FromStr for EnvOverride {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> anyhow::Result<Self> {
        let (process, kv) = raw.split_once(':').context("wants PROC:KEY=VALUE")?;
        let (key, value) = kv.split_once('=').context("wants PROC:KEY=VALUE")?;
        Ok(EnvOverride { process: process.to_owned(), key: key.to_owned(), value: value.to_owned() })
    }
}

/// `--sidecar-set KEY=VALUE`: a dotted sidecar.toml key and its value (parsed as TOML later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarOverride {
    pub key: String,
    pub value: String,
}

impl FromStr for SidecarOverride {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> anyhow::Result<Self> {
        let (key, value) = raw.split_once('=').context("wants KEY=VALUE")?;
        Ok(SidecarOverride { key: key.to_owned(), value: value.to_owned() })
    }
}

/// `--variant NAME:KEY=VALUE`: one more gateway, measured as path `gateway-NAME`, with one
/// sidecar.toml key changed (repeat with the same NAME to change several). Each lever's before
/// (`gateway`) and after (`gateway-NAME`) then run in the same run, against the same peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub set: SidecarOverride,
}

impl FromStr for Variant {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> anyhow::Result<Self> {
        let (name, kv) = raw.split_once(':').context("wants NAME:KEY=VALUE")?;
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "variant name {name:?}: letters, digits and '-' only"
        );
        Ok(Variant { name: name.to_owned(), set: kv.parse()? })
    }
}

/// The variants by path name (`gateway-NAME`), each with its overrides, in first-seen order.
pub fn variant_paths(variants: &[Variant]) -> Vec<(String, Vec<SidecarOverride>)> {
    let mut out: Vec<(String, Vec<SidecarOverride>)> = Vec::new();
    for v in variants {
        let path = format!("gateway-{}", v.name);
        match out.iter_mut().find(|(p, _)| *p == path) {
            Some((_, sets)) => sets.push(v.set.clone()),
            None => out.push((path, vec![v.set.clone()])),
        }
    }
    out
}

/// A non-negative, finite number of seconds (fractions allowed).
fn seconds(raw: &str) -> Result<Duration, String> {
    let secs: f64 = raw.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

/// A count of at least one.
fn at_least_one<T>(raw: &str) -> Result<T, String>
where
    T: FromStr<Err = ParseIntError> + From<u8> + PartialOrd,
{
    let n: T = raw.parse().map_err(|e: ParseIntError| e.to_string())?;
    if n < T::from(1) {
        return Err("must be at least 1".to_owned());
    }
    Ok(n)
}

/// The bench's flags as given; [`Options`] is what a run uses.
#[derive(Debug, Args)]
pub struct Flags {
    /// A few seconds per cell, fewer users (CI); implies --no-build.
    #[arg(long)]
    quick: bool,
    /// Use target/NAME binaries (release or debug; default: this binary's own directory).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Directory holding auth-svc, task-svc and gateway (overrides --profile).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build --release` first (always the case for debug).
    #[arg(long)]
    no_build: bool,
    /// Measured seconds per cell [default: 6, quick: 2].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<Duration>,
    /// Rounds per task cell, paths visited in rotated order; the median round is reported
    /// [default: 3, quick: 1].
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    rounds: Option<usize>,
    /// Unmeasured seconds before each cell [default: 1, quick: 0].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    warmup: Option<Duration>,
    /// wrk connections for the task workloads [default: 32, quick: 16].
    #[arg(long, value_name = "N", value_parser = at_least_one::<u32>)]
    connections: Option<u32>,
    /// wrk threads (1: the load generator shares the cores).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one::<u32>)]
    threads: u32,
    /// Pause per connection after each answer in the get-paced cells (a fixed load far below
    /// saturation).
    #[arg(long, value_name = "MS", default_value_t = 10)]
    paced_delay_ms: u32,
    /// Seeded users [default: 200, quick: 20].
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    users: Option<usize>,
    /// Seeded tasks per user.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one::<usize>)]
    tasks_per_user: usize,
    /// Concurrent clients of the login flood.
    #[arg(long, value_name = "N", default_value_t = 300)]
    login_flood: u32,
    /// Comma-separated subset of health,get,get-paced,get-vpc,list,put,post,login.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Comma-separated subset of direct,gateway,gateway-uds,gateway-nocache,gateway-before,gateway-revoked,haproxy,haproxy-jwt,haproxy-jwt-log,validate,front-door.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    paths: Option<Vec<String>>,
    /// Measure the front-door path through this running front door instead of starting
    /// devstack's (front door -> gateway -> task-svc).
    #[arg(long, value_name = "URL")]
    front_door: Option<String>,
    /// Also measure DIR/gateway (another build, e.g. main's) as gateway-before, over TCP: a
    /// change's before and after in the same run.
    #[arg(long, value_name = "DIR")]
    baseline_bin: Option<PathBuf>,
    /// Live revocations for gateway-revoked [default: 100000, quick: 10000].
    #[arg(long, value_name = "N")]
    revocations: Option<u32>,
    /// One-way delay of the VPC relays, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 250)]
    vpc_delay_us: u64,
    /// How the gateways and HAProxy reach task-svc (gateway-uds always uses task-svc's Unix
    /// socket).
    #[arg(long, value_enum, default_value_t = UpstreamTransport::Tcp)]
    upstream: UpstreamTransport,
    /// HAProxy binary.
    #[arg(long, value_name = "PATH", default_value = crate::haproxy::DEFAULT_PROGRAM)]
    haproxy: PathBuf,
    /// PostgreSQL with fsync on (default: fsync off, to measure the services).
    #[arg(long)]
    durable: bool,
    /// JSON results; the markdown goes beside it as .md [default: bench/results/latest.json,
    /// quick: bench/results/quick.json].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Extra environment for one process (auth-svc, task-svc, gateway, gateway-nocache, ...),
    /// e.g. --env auth-svc:MALLOC_ARENA_MAX=2 (repeatable).
    #[arg(long, value_name = "PROC:KEY=VALUE")]
    env: Vec<EnvOverride>,
    /// Set a key in every gateway's sidecar.toml copy, e.g. server.threads=1 (value parsed as
    /// TOML; repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    sidecar_set: Vec<SidecarOverride>,
    /// One more gateway, path `gateway-NAME`, with a sidecar.toml key changed on top of
    /// --sidecar-set, e.g. --variant t1:server.threads=1 (repeat a NAME to change several
    /// keys); it visits health, get, put and post: a lever's before and after in one run.
    #[arg(long, value_name = "NAME:KEY=VALUE")]
    variant: Vec<Variant>,
    /// Also measure the gateway's and HAProxy's (JWT check, without and with its access log)
    /// instructions per request under valgrind's callgrind, with this many `GET /tasks/{id}`
    /// and as many `PUT /tasks/{id}` sent one at a time (0: not; e.g. 2000). Slow: valgrind
    /// runs them tens of times slower.
    #[arg(long, default_value_t = 0, value_name = "REQUESTS")]
    callgrind: u64,
    /// Do not attach `perf stat` to the processes of each cell (no system call or instruction
    /// counts).
    #[arg(long)]
    no_perf: bool,
    /// Keep the run directory (logs, data) after a successful run.
    #[arg(long)]
    keep: bool,
}

/// One run's settings: the flags with the defaults of the mode (full or `--quick`) applied; each
/// field is documented on its flag in [`Flags`].
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub profile: Option<String>,
    pub bin_dir: Option<PathBuf>,
    pub no_build: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    pub paced_delay_ms: u32,
    pub connections: u32,
    pub threads: u32,
    pub users: usize,
    pub tasks_per_user: usize,
    pub login_flood: u32,
    pub workloads: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub front_door: Option<String>,
    pub baseline_bin: Option<PathBuf>,
    pub revocations: u32,
    pub vpc_delay: Duration,
    pub haproxy: PathBuf,
    pub unix_upstream: bool,
    pub durable: bool,
    pub out: Option<PathBuf>,
    pub keep: bool,
    pub no_perf: bool,
    pub callgrind: u64,
    pub env: Vec<EnvOverride>,
    pub sidecar_set: Vec<SidecarOverride>,
    pub variants: Vec<Variant>,
}

/// `a, b,,c` as `[a, b, c]`.
fn names(list: Option<Vec<String>>) -> Option<Vec<String>> {
    list.map(|l| l.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

/// `full` in a full run, `quick` with `--quick`.
fn by_mode<T>(is_quick: bool, full: T, quick: T) -> T {
    if is_quick { quick } else { full }
}

impl From<Flags> for Options {
    fn from(f: Flags) -> Self {
        let quick = f.quick;
        Options {
            quick,
            profile: f.profile,
            bin_dir: f.bin_dir,
            no_build: f.no_build || quick,
            duration: f.duration.unwrap_or(by_mode(quick, Duration::from_secs(6), Duration::from_secs(2))),
            warmup: f.warmup.unwrap_or(by_mode(quick, Duration::from_secs(1), Duration::ZERO)),
            rounds: f.rounds.unwrap_or(by_mode(quick, 3, 1)),
            paced_delay_ms: f.paced_delay_ms,
            connections: f.connections.unwrap_or(by_mode(quick, 32, 16)),
            threads: f.threads,
            users: f.users.unwrap_or(by_mode(quick, 200, 20)),
            tasks_per_user: f.tasks_per_user,
            login_flood: f.login_flood,
            workloads: names(f.workloads),
            paths: names(f.paths),
            front_door: f.front_door,
            baseline_bin: f.baseline_bin,
            revocations: f.revocations.unwrap_or(by_mode(quick, 100_000, 10_000)),
            vpc_delay: Duration::from_micros(f.vpc_delay_us),
            haproxy: f.haproxy,
            unix_upstream: f.upstream == UpstreamTransport::Unix,
            durable: f.durable,
            out: f.out,
            keep: f.keep,
            no_perf: f.no_perf,
            callgrind: f.callgrind,
            env: f.env,
            sidecar_set: f.sidecar_set,
            variants: f.variant,
        }
    }
}

impl Options {
    pub fn wants_workload(&self, name: &str) -> bool {
        self.workloads.as_ref().is_none_or(|w| w.iter().any(|x| x == name))
    }

    /// Whether `--paths` includes `name` (every path without `--paths`; a `--variant`'s path
    /// is always measured: asking for it is naming it).
    pub fn wants_path(&self, name: &str) -> bool {
        self.paths.as_ref().is_none_or(|p| p.iter().any(|x| x == name))
            || self.variants.iter().any(|v| name.strip_prefix("gateway-") == Some(v.name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    fn parse(args: &[&str]) -> Options {
        let cli = cli(args).expect("valid options");
        assert!(cli.internal.is_none());
        Options::from(cli.flags)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quick_mode_is_short_and_does_not_build() {
        let o = parse(&["--quick", "--profile", "debug"]);
        assert!(o.quick && o.no_build);
        assert_eq!(o.profile.as_deref(), Some("debug"));
        assert_eq!((o.duration, o.warmup, o.rounds), (Duration::from_secs(2), Duration::ZERO, 1));
        assert_eq!((o.connections, o.users, o.revocations), (16, 20, 10_000));
    }

    #[test]
    fn full_mode_defaults_and_filters() {
        let o = parse(&["--workloads", "get, login", "--duration", "5"]);
        assert!(!o.quick && !o.no_build);
        assert_eq!((o.duration, o.warmup, o.rounds), (Duration::from_secs(5), Duration::from_secs(1), 3));
        assert_eq!((o.connections, o.threads, o.users, o.tasks_per_user), (32, 1, 200, 5));
        assert_eq!((o.paced_delay_ms, o.login_flood), (10, 300));
        assert!(o.wants_workload("get") && o.wants_workload("login") && !o.wants_workload("put"));
        assert!(o.wants_path("gateway"));
        assert_eq!((o.revocations, o.vpc_delay), (100_000, Duration::from_micros(250)));
        assert_eq!(o.haproxy, PathBuf::from(crate::haproxy::DEFAULT_PROGRAM));
        assert!(!o.unix_upstream && !o.durable && !o.keep && o.out.is_none());
        let o = parse(&["--vpc-delay-us", "1000", "--baseline-bin", "/tmp/b", "--upstream", "unix"]);
        assert_eq!(o.vpc_delay, Duration::from_millis(1));
        assert_eq!(o.baseline_bin, Some(PathBuf::from("/tmp/b")));
        assert!(o.unix_upstream);
    }

    #[test]
    fn variants_group_their_keys_by_name_and_are_always_measured() {
        let o = parse(&[
            "--paths",
            "gateway",
            "--variant",
            "t1:server.threads=1",
            "--variant",
            "quiet:log.sample=0",
            "--variant",
            "t1:cache.enabled=false",
        ]);
        let set = |k: &str, v: &str| SidecarOverride { key: k.into(), value: v.into() };
        assert_eq!(
            variant_paths(&o.variants),
            [
                ("gateway-t1".to_owned(), vec![set("server.threads", "1"), set("cache.enabled", "false")]),
                ("gateway-quiet".to_owned(), vec![set("log.sample", "0")]),
            ]
        );
        assert!(o.wants_path("gateway") && o.wants_path("gateway-t1") && !o.wants_path("haproxy"));
        assert!("t 1:a=b".parse::<Variant>().is_err() && "t1".parse::<Variant>().is_err());
    }

    #[test]
    fn repeatable_overrides() {
        let o = parse(&["--env", "auth-svc:A=b=c", "--env", "gateway:X=", "--sidecar-set", "server.threads=1"]);
        let env = |process: &str, key: &str, value: &str| EnvOverride {
            process: process.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        assert_eq!(o.env, [env("auth-svc", "A", "b=c"), env("gateway", "X", "")]);
        assert_eq!(o.sidecar_set, [SidecarOverride { key: "server.threads".to_owned(), value: "1".to_owned() }]);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &["--bogus"][..],
            &["--users", "0"],
            &["--rounds", "0"],
            &["--connections", "0"],
            &["--duration", "-1"],
            &["--upstream", "udp"],
            &["--env", "auth-svc=1"],
            &["--sidecar-set", "server.threads"],
        ] {
            assert!(cli(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn internal_subcommands() {
        let door = cli(&["front-door", "--listen", "127.0.0.1:1", "--gateway", "127.0.0.1:2", "--auth", "127.0.0.1:3"]);
        assert!(matches!(door.expect("valid").internal, Some(Internal::FrontDoor { .. })));
        let proxy = cli(&["validate-proxy", "--listen", "127.0.0.1:1", "--auth", "http://a", "--upstream", "http://b"]);
        assert!(matches!(proxy.expect("valid").internal, Some(Internal::ValidateProxy { .. })));
        // The internal subcommands take none of the bench's flags.
        assert!(cli(&["--quick", "front-door", "--listen", "127.0.0.1:1"]).is_err());
    }
}
