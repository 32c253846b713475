//! `bench`: what the edge-validated design buys, measured side by side in one run.
//!
//! Starts a throwaway PostgreSQL cluster and the real binaries on loopback, seeds users and
//! tasks, and drives every workload through every path with wrk (Lua scripts in bench/lua):
//! straight into task-svc with the identity header, through the gateway with and without its
//! token cache, through a proxy that asks auth-svc on every request (the original design), and
//! through the local front door when one is given. Prints markdown tables and writes JSON.
//! See docs/benchmarks.md.

mod callgrind;
mod front_door;
mod haproxy;
mod options;
mod perf;
mod procstat;
mod relay;
mod report;
mod results;
mod revocations;
mod run;
mod scrape;
mod seed;
mod stack;
mod validate_proxy;
mod wrk;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::options::{Cli, Internal, Options};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.internal {
        Some(Internal::ValidateProxy { listen, auth, upstream }) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(validate_proxy::serve(listen, &auth, &upstream))
        }
        Some(Internal::FrontDoor { listen, gateway, auth }) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(front_door::serve(listen, gateway, auth))
        }
        // One worker thread: the bench's own work is light, and the cores belong to the system
        // under test.
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            runtime.block_on(run::run(Options::from(cli.flags)))
        }
    }
}
