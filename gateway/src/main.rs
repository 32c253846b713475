//! `gateway [--config PATH]` runs the proxy; `gateway healthcheck` probes its readiness (for the
//! ECS container health check: the image has no shell or curl).

use std::process::ExitCode;

use gateway::config::{Config, config_path};
use platform::config::Env;

const USAGE: &str = "usage: gateway [--config PATH] [healthcheck]\n\n\
Config file: --config, else $SIDECAR_CONFIG, else ./sidecar.toml. See docs/gateway.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut healthcheck = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "healthcheck" => healthcheck = true,
            "--config" => {
                rest.next();
            }
            a if a.starts_with("--config=") => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("gateway: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (path, explicit) = config_path(&args, &Env);
    if healthcheck {
        let addr = Config::metrics_addr(&path, &Env);
        return platform::healthcheck::run(platform::healthcheck::local_addr(addr.ip(), addr.port()), "/ready");
    }
    // The access log is one line per request: written by a background thread, not by the
    // worker with a system call per line. The guard writes the last lines at exit.
    let _log_guard = platform::telemetry::init_non_blocking("gateway");
    let config = match Config::load(&path, explicit, &Env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(key = %e.key, "{e}");
            eprintln!("gateway: {e}");
            return ExitCode::from(78);
        }
    };
    match gateway::build_server(config) {
        // `run` (not `run_forever`, which ends in `std::process::exit`) returns after the
        // graceful shutdown, so `_log_guard` writes the last batch of access lines on the way out.
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
