//! One benchmark run: build, start, seed, measure every cell, report. Each step is a module;
//! [`run`] calls them in order.

mod cell;
mod finish;
mod login;
mod revocation_cost;
mod routes;
mod sample;
mod setup;
mod tasks;

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::callgrind::CallgrindFigure;
use crate::options::Options;
use crate::perf;
use crate::procstat;
use crate::relay;
use crate::report;
use crate::results::Results;
use crate::stack::BenchStack;

use cell::Meter;
use sample::Watched;

/// Runs the whole benchmark `o` describes, prints the markdown and writes the results. Errors:
/// a step failed, or the run is not valid (answers a cell should not get; the logs are kept).
pub async fn run(o: Options) -> Result<()> {
    let started = Instant::now();
    let dirs = setup::prepare(&o)?;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (stack, ready_ms) = setup::start(&o, &dirs).await?;
    setup::seed(&o, &stack, &dirs.run_dir).await?;

    let postgres = stack.postgres_pid(&dirs.run_dir);
    let watched = stack.services().iter().map(|s| Watched { name: s.name, pid: s.pid(), metrics: s.metrics }).collect();
    let pulled = revocation_cost::pulled(&stack.revoked).await?;
    eprintln!(
        "    gateway-revoked holds {} revocations ({} bytes pulled in {} pulls)",
        pulled.live, pulled.bytes, pulled.pulls
    );
    let tokio_sleep_ms = relay::tokio_sleep_overshoot(o.vpc_delay, if o.quick { 50 } else { 400 }).await;
    let counting = if o.no_perf {
        perf::Availability { syscalls: "--no-perf".into(), instructions: "--no-perf".into() }
    } else {
        perf::Availability::probe()
    };
    let meter = Meter {
        o: &o,
        lua_dir: dirs.lua_dir.clone(),
        data_dir: dirs.run_dir.clone(),
        stack: &stack,
        watched,
        postgres,
        ticks: procstat::clock_ticks(),
        perf: counting.clone(),
    };

    let routes = routes::routes(&o, &stack);
    let (mut cells, network) = tasks::run(&meter, &routes, tokio_sleep_ms).await?;
    let callgrind = callgrind(&o, &stack, &dirs.run_dir).await?;
    let mut login = None;
    if o.wants_workload("login") {
        let (figures, login_cells) = login::run(&meter).await?;
        login = Some(figures);
        cells.extend(login_cells);
    }
    // Steady-state pulls of the revoked gateway: bytes per pull while nothing changed.
    let revocation_cost = revocation_cost::cost(&stack.revoked, &pulled).await;
    stack.stop();

    let problems = finish::problems(&cells);
    let targets = report::targets(&cells, &ready_ms, login.as_ref(), network.as_ref(), Some(&revocation_cost));
    let results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        mode: if o.quick { "quick" } else { "full" },
        // Relative to the checkout when inside it: the results are committed, and where one
        // person's clone lives says nothing to the next reader.
        bin_dir: dirs.bin_dir.strip_prefix(devstack::stack::repo_root()).unwrap_or(&dirs.bin_dir).display().to_string(),
        commit: finish::commit(),
        machine: finish::machine(),
        settings: finish::settings(&o, &load_before),
        ready_ms,
        cells,
        login,
        network,
        revocations: Some(revocation_cost),
        counting,
        callgrind,
        targets,
        problems,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    finish::write(&o, &results)?;

    if !results.problems.is_empty() {
        bail!("the run is not valid (logs kept in {}):\n  {}", dirs.run_dir.display(), results.problems.join("\n  "));
    }
    if !o.keep {
        let _ = std::fs::remove_dir_all(&dirs.run_dir);
    }
    Ok(())
}

/// `--callgrind N`: each edge under callgrind serves N `GET`s, then N `PUT`s; its instructions
/// per request of each.
async fn callgrind(o: &Options, stack: &BenchStack, run_dir: &Path) -> Result<Vec<CallgrindFigure>> {
    if stack.callgrind.is_empty() {
        return Ok(Vec::new());
    }
    let seeded = std::fs::read_to_string(run_dir.join("tasks.txt"))?;
    let requests: Vec<(String, String)> = seeded
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[0].to_owned(), f[2].to_owned()))
        })
        .collect();
    eprintln!("==> callgrind: {} requests one at a time through each edge", o.callgrind);
    let mut figures = Vec::new();
    for workload in crate::callgrind::CallgrindWorkload::ALL {
        for (path, edge) in &stack.callgrind {
            let figure = crate::callgrind::measure(run_dir, edge, path, &requests, workload, o.callgrind).await?;
            eprintln!(
                "    {:<16} {:<16} {:>12.0} instructions/request",
                workload.label(),
                path,
                figure.instructions_per_request
            );
            figures.push(figure);
        }
    }
    Ok(figures)
}
