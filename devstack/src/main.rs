//! `scripts/run.sh` (`cargo run --release --bin devstack`): the whole system on 127.0.0.1, shaped like the ECS
//! deployment, until Ctrl-C or SIGTERM. See docs/local-run.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use devstack::build::Profile;
use devstack::logs::LogSink;
use devstack::monitoring::{PrometheusOptions, PrometheusPort};
use devstack::stack::{Options, Stack, repo_root};
use front_door::{FrontDoorConfig, HealthCheck};

/// Runs the Task Management API locally the way it runs on ECS: PostgreSQL, auth-svc
/// instances, task-svc + gateway "tasks", and a front door standing in for the ALB.
#[derive(Debug, Parser)]
#[command(name = "devstack", version, after_help = AFTER_HELP)]
struct Args {
    /// Front door (ALB stand-in) port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,

    /// Number of auth-svc instances (the auth-service ECS service's desired count).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    auth_instances: u16,

    /// Number of task-service "tasks" (each a task-svc with its own gateway sidecar).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    task_instances: u16,

    /// First of the internal ports (auth discovery, PostgreSQL, services, gateways, metrics),
    /// used consecutively. Default: free ports picked at start and printed.
    #[arg(long)]
    base_port: Option<u16>,

    /// PostgreSQL's port. Default: a free port.
    #[arg(long)]
    pg_port: Option<u16>,

    /// Keep the PostgreSQL cluster here and reuse it on the next run. Default: a temporary
    /// directory that is removed on exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Use this PostgreSQL database instead of starting a cluster (it is migrated on start).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,

    /// The gateway's config file.
    #[arg(long, value_name = "PATH", default_value_os_t = repo_root().join("sidecar.toml"))]
    sidecar_config: PathBuf,

    /// Set one key of the gateways' config (dotted, value as TOML), e.g.
    /// `--sidecar-set access_log.successes=1` for an access line per request; repeatable.
    /// An unknown key or a value the key refuses stops the start with an error naming it.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_sidecar_set)]
    sidecar_set: Vec<(String, String)>,

    /// Override the gateways' shutdown grace (sidecar.toml [shutdown] grace_period_secs, 15 s
    /// there: pingora waits all of it on SIGTERM, so Ctrl-C takes that long by default).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=100))]
    gateway_grace: Option<u64>,

    /// auth-svc/task-svc SHUTDOWN_GRACE_SECS (their default: 20).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=110))]
    service_grace: Option<u64>,

    /// Front door health-check interval (the ALB target groups' HealthCheckIntervalSeconds).
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    health_interval_ms: u64,

    /// Also print the gateways' access-log lines for passing health checks (hidden by default;
    /// a success has a line only in the share `[access_log] successes` sets, 0.01 by default).
    /// auth-svc and task-svc log polled routes at debug: `RUST_LOG=info,tower_http=debug` shows them.
    #[arg(long)]
    show_health_checks: bool,

    /// Prometheus' port (UI and API) on 127.0.0.1, an error when taken; 0 picks a free one.
    /// Default: 9090 when free, else a free port (the banner prints it).
    #[arg(long, value_name = "PORT", conflicts_with = "no_prometheus")]
    prometheus_port: Option<u16>,

    /// Do not start the local Prometheus (by default it scrapes every process and evaluates
    /// ecs/prometheus/rules; it needs the Debian package `prometheus`).
    #[arg(long)]
    no_prometheus: bool,

    /// Token signing: HS256 (a secret shared by auth-svc and the gateways), or RS256/EdDSA with
    /// a key pair generated for the run: auth-svc alone holds the private key, the gateways
    /// verify with its JWKS (/auth/.well-known/jwks.json).
    #[arg(long, value_name = "ALG", default_value = "HS256", value_parser = ["HS256", "RS256", "EdDSA"])]
    jwt_alg: String,

    /// Do not build: run the binaries beside this one. Launched by cargo, no `cargo build` of the
    /// services; through scripts/run.sh, no cargo at all (it runs target/release/devstack).
    #[arg(long)]
    no_build: bool,
}

const AFTER_HELP: &str = "\
Routes: /auth, /auth/* -> auth-svc; /tasks, /tasks/* -> the gateways (-> task-svc); anything
else is a JSON 404. Prometheus (Debian package `prometheus`) scrapes every process with the
rules of ecs/prometheus/rules; its URL is in the banner. Stop with Ctrl-C or SIGTERM:
Prometheus, front door, gateways, services, then PostgreSQL stop in that order. Logs of every
process are printed with its name as prefix.
Binaries: when started by cargo, `cargo build --workspace --bin auth-svc --bin task-svc --bin
gateway` runs first (same profile, same feature resolution: nothing is compiled twice);
otherwise they must be beside this executable (or in $TASKMGMT_BIN_DIR).
See docs/local-run.md.";

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = LogSink::stdout().with_health_checks(args.show_health_checks);
    // The front door runs in this process: its tracing events get a prefix like a child's lines.
    logs.install_tracing(&[("front_door", "front-door")]);
    if let Err(e) = build_siblings(&args, &logs) {
        logs.line("devstack", &format!("error: {e:#}"));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devstack: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, logs.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable message, not a backtrace: most failures are the environment's
            // (a port taken, PostgreSQL missing) and the message says what to do.
            logs.line("devstack", &format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `--sidecar-set`'s `KEY=VALUE`, split at the first `=`; the pair is checked against the config
/// when the stack starts.
fn parse_sidecar_set(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{raw:?}: wants KEY=VALUE, e.g. access_log.successes=1")),
    }
}

/// Under `cargo run`, builds the other binaries with the profile this one was built with, so
/// the one command works on a fresh clone. The build selects the whole workspace like the
/// `cargo run --bin devstack` that started us, so it reuses every unit that build compiled
/// (see devstack::build).
fn build_siblings(args: &Args, logs: &LogSink) -> Result<()> {
    if std::env::var_os("CARGO").is_none() || args.no_build {
        return Ok(());
    }
    let mut cmd = devstack::build::services(Profile::current());
    let described = devstack::build::describe(&cmd);
    logs.line("devstack", &format!("building auth-svc, task-svc and gateway ({described})"));
    let status = cmd.status().context("could not run cargo")?;
    if !status.success() {
        bail!("`{described}` failed ({status})");
    }
    Ok(())
}

async fn run(args: Args, logs: LogSink) -> Result<()> {
    let bin_dir = devstack::process::bin_dir()?;
    let mut opts = Options::new(bin_dir);
    opts.port = args.port;
    opts.auth_instances = usize::from(args.auth_instances);
    opts.task_instances = usize::from(args.task_instances);
    opts.base_port = args.base_port;
    opts.pg_port = args.pg_port;
    opts.data_dir = args.data_dir;
    opts.database_url = args.database_url.filter(|u| !u.trim().is_empty());
    opts.sidecar_config = args.sidecar_config;
    opts.sidecar_set = args.sidecar_set;
    opts.gateway_grace_secs = args.gateway_grace;
    opts.service_grace_secs = args.service_grace;
    opts.jwt_alg = args.jwt_alg.parse().map_err(|e| anyhow::anyhow!("--jwt-alg: {e}"))?;
    opts.front_door = FrontDoorConfig {
        health: HealthCheck { interval: Duration::from_millis(args.health_interval_ms), ..HealthCheck::default() },
        ..FrontDoorConfig::default()
    };
    opts.prometheus = (!args.no_prometheus).then(|| PrometheusOptions {
        port: args
            .prometheus_port
            .map_or(PrometheusPort::Preferred(devstack::monitoring::DEFAULT_PORT), PrometheusPort::Exactly),
        ..PrometheusOptions::default()
    });
    opts.logs = logs.clone();

    // Signals are hooked before anything starts: a Ctrl-C during start-up still stops what
    // was started (the stack's Drop kills the children; PostgreSQL is stopped).
    let signal = tokio::spawn(platform::shutdown::signal());
    let mut signal = std::pin::pin!(signal);
    let mut stack = tokio::select! {
        stack = Stack::start(opts) => stack?,
        _ = &mut signal => bail!("interrupted during start-up"),
    };
    logs.block(&banner(&stack));

    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = check.tick() => {
                for (name, status) in stack.exited() {
                    let effect = if name == "prometheus" {
                        "no scrapes, graphs or alerts until the next run"
                    } else {
                        "the front door's health checks take it out of rotation"
                    };
                    logs.line("devstack", &format!("{name} exited unexpectedly ({status}); {effect}"));
                }
            }
        }
    }
    logs.line("devstack", "shutting down");
    stack.shutdown().await
}

/// The banner's Prometheus lines: the UI, its targets and alerts pages (the Debian build serves
/// the classic UI under /classic), and where the key graphs are explained.
fn prometheus_lines(stack: &Stack) -> String {
    match stack.prometheus_url() {
        Some(url) => format!(
            " Prometheus: {url} (2 s scrapes, rules of ecs/prometheus/rules)\n   \
             targets {url}/classic/targets   alerts {url}/classic/alerts\n   \
             key graphs: docs/observability.md"
        ),
        None => " Prometheus: off (--no-prometheus)".to_owned(),
    }
}

/// The banner's signing mode: who holds which key.
fn signing_line(stack: &Stack) -> String {
    let alg = stack.jwt_alg();
    if alg.is_asymmetric() {
        format!(
            "{alg} (auth-svc's key, generated for this run; gateways verify with {}/auth/.well-known/jwks.json)",
            stack.url()
        )
    } else {
        "HS256 (one secret shared by auth-svc and the gateways, generated for this run)".to_owned()
    }
}

fn banner(stack: &Stack) -> String {
    let url = stack.url();
    let alb = url.trim_start_matches("http://");
    let mut processes = String::new();
    for p in stack.processes() {
        processes.push_str(&format!(
            "   {:<11} pid {:<8} http://{:<16} metrics http://{}/metrics\n",
            p.name, p.pid, p.addr, p.metrics
        ));
    }
    format!(
        r#"
================================================================================
 Task Management API is running: {url}
   /auth, /auth/*   -> auth-svc instances      /tasks, /tasks/* -> gateways -> task-svc
   gateways reach auth-svc at {discovery} (Cloud Map stand-in)
   token signing: {signing}
   database: {storage}
{processes}{prometheus}

 Try it (the guide's Phase 8):
   ALB_DNS={alb}
   curl -X POST http://${{ALB_DNS}}/auth/register -H "Content-Type: application/json" \
     -d '{{"username": "testuser", "email": "test@example.com", "password": "SecurePass123!"}}'
   curl -X POST http://${{ALB_DNS}}/auth/login -H "Content-Type: application/json" \
     -d '{{"username": "testuser", "password": "SecurePass123!"}}'
   TOKEN=$(curl -s -X POST http://${{ALB_DNS}}/auth/login -H "Content-Type: application/json" \
     -d '{{"username": "testuser", "password": "SecurePass123!"}}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
   curl -X POST http://${{ALB_DNS}}/tasks -H "Content-Type: application/json" -H "Authorization: Bearer ${{TOKEN}}" \
     -d '{{"title": "Learn AWS ECS", "description": "Complete the ECS implementation guide", "status": "in_progress", "priority": "high", "due_date": "2024-01-15T00:00:00Z"}}'
   curl http://${{ALB_DNS}}/tasks -H "Authorization: Bearer ${{TOKEN}}"

 Stop with Ctrl-C (or SIGTERM).
================================================================================"#,
        discovery = stack.auth_discovery_url(),
        signing = signing_line(stack),
        storage = stack.storage().describe(),
        prometheus = prometheus_lines(stack),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sidecar_set_takes_repeated_pairs_split_at_the_first_equals_sign() {
        let args = Args::try_parse_from([
            "devstack",
            "--sidecar-set",
            "access_log.successes=1",
            "--sidecar-set",
            "auth.url=\"http://a=b\"",
        ])
        .unwrap();
        assert_eq!(
            args.sidecar_set,
            vec![
                ("access_log.successes".to_owned(), "1".to_owned()),
                ("auth.url".to_owned(), "\"http://a=b\"".to_owned())
            ]
        );
        assert!(Args::try_parse_from(["devstack"]).unwrap().sidecar_set.is_empty());
    }

    #[test]
    fn sidecar_set_without_a_key_and_value_is_refused_with_an_example() {
        for bad in ["access_log.successes", "=1", ""] {
            let e = Args::try_parse_from(["devstack", "--sidecar-set", bad]).unwrap_err().to_string();
            assert!(e.contains("wants KEY=VALUE, e.g. access_log.successes=1"), "{bad:?}: {e}");
        }
    }
}
