//! `bench`: what the edge-validated design buys, measured side by side in one run.
//!
//! Starts a throwaway PostgreSQL cluster and the real binaries on loopback, seeds users and
//! tasks, and drives every workload through every path with wrk (Lua scripts in bench/lua):
//! straight into task-svc with the identity header, through the gateway with and without its
//! token cache, through a proxy that asks auth-svc on every request (the original design), and
//! through the local front door when one is given. Prints markdown tables and writes JSON.
//! See docs/benchmarks.md.

mod front_door;
mod haproxy;
mod options;
mod procstat;
mod relay;
mod report;
mod revocations;
mod run;
mod seed;
mod stack;
mod validate_proxy;
mod wrk;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};

fn validate_proxy_main(args: &[String]) -> Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let (mut auth, mut upstream) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = Some(it.next().context("--listen ADDR")?.parse()?),
            "--auth" => auth = Some(it.next().context("--auth URL")?.clone()),
            "--upstream" => upstream = Some(it.next().context("--upstream URL")?.clone()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(validate_proxy::serve(
        listen.context("--listen is required")?,
        &auth.context("--auth is required")?,
        &upstream.context("--upstream is required")?,
    ))
}

fn front_door_main(args: &[String]) -> Result<()> {
    let (mut listen, mut gateway, mut auth): (Option<SocketAddr>, Option<SocketAddr>, Option<SocketAddr>) =
        (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v: SocketAddr = it.next().with_context(|| format!("{a} ADDR"))?.parse()?;
        match a.as_str() {
            "--listen" => listen = Some(v),
            "--gateway" => gateway = Some(v),
            "--auth" => auth = Some(v),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(front_door::serve(
        listen.context("--listen is required")?,
        gateway.context("--gateway is required")?,
        auth.context("--auth is required")?,
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().is_some_and(|a| a == "validate-proxy") {
        validate_proxy_main(&args[1..])
    } else if args.first().is_some_and(|a| a == "front-door") {
        front_door_main(&args[1..])
    } else {
        options::Options::parse(args).and_then(|o| {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            runtime.block_on(run::run(o))
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
