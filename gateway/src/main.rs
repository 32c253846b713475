//! `gateway [--config PATH]` runs the proxy; `gateway healthcheck` probes its readiness (for the
//! ECS container health check: the image has no shell or curl).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::{Config, ConfigPath};
use platform::config::Env;

/// The gateway: the pingora sidecar in front of task-svc. It verifies each request's token
/// itself and forwards only authenticated requests. See docs/gateway.md.
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    disable_help_subcommand = true,
    after_help = "Environment variables override single keys per task (GATEWAY_LISTEN, METRICS_ADDR, \
                  UPSTREAM_ADDR, UPSTREAM_SOCKET, UPSTREAM_METRICS_ADDR, AUTH_SERVICE_URL, \
                  RATE_LIMIT_PEERS_DNS_NAME). JWT_ALG picks the \
                  signing mode: HS256 (default; the keyring comes from JWT_SECRET [+ JWT_SECRET_PREVIOUS] \
                  or JWT_SECRET_ARN) or RS256/EdDSA (auth-svc's JWKS over AUTH_SERVICE_URL, no secret). \
                  LOG_FORMAT=json|compact, RUST_LOG the filter. An empty variable is unset. The list with \
                  what each overrides is at the top of sidecar.toml."
)]
struct Cli {
    /// The config file [default: $SIDECAR_CONFIG, else ./sidecar.toml, where a missing file
    /// means all defaults]
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe the running gateway: GET /ready on its metrics port; exit 0 only on 200 (the ECS
    /// container health check).
    Healthcheck,
}

/// jemalloc, not glibc's malloc: the gateway makes about a hundred allocations per proxied
/// request (pingora's header maps, buffers and futures), and jemalloc's thread caches take
/// about 14,000 instructions per request off glibc's, at the same peak RSS
/// (docs/benchmarks.md). The `count-allocations` build counts over the system allocator
/// instead (`gateway::heap_count`): the counts do not depend on the allocator.
#[cfg(not(feature = "count-allocations"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let at = ConfigPath::locate(cli.config.as_deref(), &Env);
    if let Some(Command::Healthcheck) = cli.command {
        let addr = Config::metrics_addr(&at, &Env);
        return platform::healthcheck::run(platform::healthcheck::local_addr(addr.ip(), addr.port()), "/ready");
    }
    // Access lines are written by a background thread, not by the worker with a system call
    // per line. The guard writes the last lines at exit.
    // The span exporter's guard flushes the last spans at exit too.
    let logs = platform::telemetry::init_non_blocking("gateway");
    let config = match platform::telemetry::check(&Env, "gateway").and_then(|()| Config::load(&at, &Env)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(key = %e.key, "{e}");
            eprintln!("gateway: {e}");
            return ExitCode::from(78);
        }
    };
    match gateway::build_server(config, logs.lines.clone()) {
        // `run` (not `run_forever`, which ends in `std::process::exit`) returns after the
        // graceful shutdown, so `logs` writes the last batch of access lines on the way out.
        Ok(server) => {
            server.run(pingora::server::RunArgs::default());
            tracing::info!("gateway stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_documented_invocation_parses() {
        // The image's ENTRYPOINT (config from SIDECAR_CONFIG), the launcher's `--config PATH`,
        // the ECS health check, and the flag on either side of the subcommand.
        let cli = parse(&[]).unwrap();
        assert!(cli.config.is_none() && cli.command.is_none());
        for args in [&["--config", "/etc/s.toml"][..], &["--config=/etc/s.toml"]] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/etc/s.toml")));
            assert!(cli.command.is_none());
        }
        assert!(matches!(parse(&["healthcheck"]).unwrap().command, Some(Command::Healthcheck)));
        for args in [&["--config", "/x.toml", "healthcheck"][..], &["healthcheck", "--config", "/x.toml"]] {
            let cli = parse(args).unwrap();
            assert!(matches!(cli.command, Some(Command::Healthcheck)));
            assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        }
    }

    #[test]
    fn unknown_arguments_are_usage_errors_and_help_is_not() {
        for args in [&["--nope"][..], &["serve"], &["--config"]] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let text = help.to_string();
        assert!(text.contains("--config <PATH>") && text.contains("healthcheck") && text.contains("SIDECAR_CONFIG"));
    }
}
