//! Command-line options.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub const USAGE: &str = "\
bench: the request paths side by side on the real binaries (see docs/benchmarks.md)

usage: bench [options]
  --quick                 a few seconds per cell, fewer users (CI); implies --no-build
  --profile NAME          use target/NAME binaries (release or debug; default: this binary's own)
  --bin-dir DIR           directory holding auth-svc, task-svc and gateway (overrides --profile)
  --no-build              do not run `cargo build --release` first (always the case for debug)
  --duration SECS         measured seconds per cell (default 10, quick 2)
  --rounds N              rounds per task cell, paths visited in rotated order; the median round
                          is reported (default 3, quick 1)
  --warmup SECS           unmeasured seconds before each cell (default 2, quick 0)
  --connections N         wrk connections for the task workloads (default 32, quick 16)
  --threads N             wrk threads (default 1: the load generator shares the 2 cores)
  --paced-delay-ms MS     pause per connection after each answer in the get-paced cells
                          (default 10: a fixed load far below saturation)
  --users N               seeded users (default 200, quick 20)
  --tasks-per-user N      seeded tasks per user (default 5)
  --login-flood N         concurrent clients of the login flood (default 300)
  --workloads LIST        comma-separated subset of health,get,get-paced,get-vpc,list,put,post,login
  --paths LIST            comma-separated subset of direct,gateway,gateway-uds,gateway-nocache,
                          gateway-before,gateway-revoked,haproxy,haproxy-jwt,validate,front-door
  --front-door URL        measure the front-door path through this running front door instead of
                          starting devstack's (front door -> gateway -> task-svc)
  --baseline-bin DIR      also measure DIR/gateway (another build, e.g. main's) as gateway-before,
                          over TCP: a change's before and after in the same run
  --revocations N         live revocations for gateway-revoked (default 100000, quick 10000)
  --vpc-delay-us US       one-way delay of the VPC relays (default 250)
  --upstream tcp|unix     how the gateways and HAProxy reach task-svc (default tcp, as shipped;
                          gateway-uds always uses task-svc's Unix socket)
  --haproxy PATH          HAProxy binary (default /usr/sbin/haproxy)
  --durable               PostgreSQL with fsync on (default: fsync off, to measure the services)
  --out FILE              JSON results (default bench/results/latest.json, quick: quick.json)
  --env PROC:KEY=VALUE    extra environment for one process (auth-svc, task-svc, gateway,
                          gateway-nocache), e.g. --env auth-svc:MALLOC_ARENA_MAX=2 (repeatable)
  --sidecar-set KEY=VALUE set a key in both gateways' sidecar.toml copies, e.g. server.threads=1
                          (value parsed as TOML; repeatable)
  --keep                  keep the run directory (logs, data) after a successful run
  validate-proxy --listen ADDR --auth URL --upstream URL
                          (internal) the per-request validation proxy
  front-door --listen ADDR --gateway ADDR --auth ADDR
                          (internal) devstack's front door in a process of its own
";

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
    /// (process, key, value) from `--env`.
    pub env: Vec<(String, String, String)>,
    /// (dotted key, TOML value) from `--sidecar-set`.
    pub sidecar_set: Vec<(String, String)>,
}

fn value<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, name: &str) -> Result<T> {
    let raw = args.next().with_context(|| format!("{name} needs a value"))?;
    raw.parse::<T>().map_err(|_| anyhow::anyhow!("bad value for {name}: {raw}"))
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut args = args.into_iter();
        let mut quick = false;
        let mut o = Options {
            quick: false,
            profile: None,
            bin_dir: None,
            no_build: false,
            duration: Duration::ZERO,
            warmup: Duration::ZERO,
            rounds: 1,
            paced_delay_ms: 10,
            connections: 0,
            threads: 1,
            users: 0,
            tasks_per_user: 5,
            login_flood: 300,
            workloads: None,
            paths: None,
            front_door: None,
            baseline_bin: None,
            revocations: 0,
            vpc_delay: Duration::from_micros(250),
            haproxy: PathBuf::from(crate::haproxy::DEFAULT_PROGRAM),
            unix_upstream: false,
            durable: false,
            out: None,
            keep: false,
            env: Vec::new(),
            sidecar_set: Vec::new(),
        };
        let (mut duration, mut warmup, mut connections, mut users, mut rounds) = (None, None, None, None, None);
        let mut revocations = None;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--profile" => o.profile = Some(value(&mut args, &arg)?),
                "--bin-dir" => o.bin_dir = Some(value(&mut args, &arg)?),
                "--no-build" => o.no_build = true,
                "--duration" => duration = Some(value::<f64>(&mut args, &arg)?),
                "--paced-delay-ms" => o.paced_delay_ms = value(&mut args, &arg)?,
                "--rounds" => rounds = Some(value(&mut args, &arg)?),
                "--warmup" => warmup = Some(value::<f64>(&mut args, &arg)?),
                "--connections" => connections = Some(value(&mut args, &arg)?),
                "--threads" => o.threads = value(&mut args, &arg)?,
                "--users" => users = Some(value(&mut args, &arg)?),
                "--tasks-per-user" => o.tasks_per_user = value(&mut args, &arg)?,
                "--login-flood" => o.login_flood = value(&mut args, &arg)?,
                "--workloads" => o.workloads = Some(list(&value::<String>(&mut args, &arg)?)),
                "--paths" => o.paths = Some(list(&value::<String>(&mut args, &arg)?)),
                "--front-door" => o.front_door = Some(value(&mut args, &arg)?),
                "--baseline-bin" => o.baseline_bin = Some(value(&mut args, &arg)?),
                "--revocations" => revocations = Some(value(&mut args, &arg)?),
                "--vpc-delay-us" => o.vpc_delay = Duration::from_micros(value(&mut args, &arg)?),
                "--haproxy" => o.haproxy = value(&mut args, &arg)?,
                "--upstream" => {
                    o.unix_upstream = match value::<String>(&mut args, &arg)?.as_str() {
                        "unix" => true,
                        "tcp" => false,
                        other => bail!("--upstream wants unix or tcp, not {other}"),
                    }
                }
                "--durable" => o.durable = true,
                "--out" => o.out = Some(value(&mut args, &arg)?),
                "--keep" => o.keep = true,
                "--sidecar-set" => {
                    let raw: String = value(&mut args, &arg)?;
                    let (k, v) = raw.split_once('=').context("--sidecar-set wants KEY=VALUE")?;
                    o.sidecar_set.push((k.to_owned(), v.to_owned()));
                }
                "--env" => {
                    let raw: String = value(&mut args, &arg)?;
                    let (process, kv) = raw.split_once(':').context("--env wants PROC:KEY=VALUE")?;
                    let (k, v) = kv.split_once('=').context("--env wants PROC:KEY=VALUE")?;
                    o.env.push((process.to_owned(), k.to_owned(), v.to_owned()));
                }
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}\n\n{USAGE}"),
            }
        }
        o.quick = quick;
        if quick {
            o.no_build = true;
        }
        o.duration = Duration::from_secs_f64(duration.unwrap_or(if quick { 2.0 } else { 6.0 }));
        o.warmup = Duration::from_secs_f64(warmup.unwrap_or(if quick { 0.0 } else { 1.0 }));
        o.rounds = rounds.unwrap_or(if quick { 1 } else { 3 });
        o.connections = connections.unwrap_or(if quick { 16 } else { 32 });
        o.users = users.unwrap_or(if quick { 20 } else { 200 });
        o.revocations = revocations.unwrap_or(if quick { 10_000 } else { 100_000 });
        if o.users == 0 || o.tasks_per_user == 0 || o.connections == 0 || o.threads == 0 || o.rounds == 0 {
            bail!("--users, --tasks-per-user, --connections, --threads and --rounds must be at least 1");
        }
        Ok(o)
    }

    pub fn wants_workload(&self, name: &str) -> bool {
        self.workloads.as_ref().is_none_or(|w| w.iter().any(|x| x == name))
    }

    pub fn wants_path(&self, name: &str) -> bool {
        self.paths.as_ref().is_none_or(|p| p.iter().any(|x| x == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::parse(args.iter().map(|s| (*s).to_owned())).expect("valid options")
    }

    #[test]
    fn quick_mode_is_short_and_does_not_build() {
        let o = parse(&["--quick", "--profile", "debug"]);
        assert!(o.quick && o.no_build);
        assert_eq!(o.profile.as_deref(), Some("debug"));
        assert_eq!(o.duration, Duration::from_secs(2));
        assert_eq!(o.users, 20);
        assert_eq!(o.revocations, 10_000);
    }

    #[test]
    fn full_mode_defaults_and_filters() {
        let o = parse(&["--workloads", "get,login", "--duration", "5"]);
        assert!(!o.quick && !o.no_build);
        assert_eq!(o.duration, Duration::from_secs(5));
        assert!(o.wants_workload("get") && o.wants_workload("login") && !o.wants_workload("put"));
        assert!(o.wants_path("gateway"));
        assert_eq!((o.revocations, o.vpc_delay), (100_000, Duration::from_micros(250)));
        let o = parse(&["--vpc-delay-us", "1000", "--baseline-bin", "/tmp/b"]);
        assert_eq!(o.vpc_delay, Duration::from_millis(1));
        assert_eq!(o.baseline_bin, Some(PathBuf::from("/tmp/b")));
        assert!(Options::parse(["--bogus".to_owned()]).is_err());
    }
}
