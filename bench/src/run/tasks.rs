//! The task workloads: every route each visits, in rounds, and the VPC relays' figures.

use std::time::Duration;

use anyhow::Result;

use super::cell::Meter;
use super::routes::{Route, TASK_WORKLOADS};
use crate::relay::HoldSummary;
use crate::results::{Cell, Network};

/// Runs every task workload asked for over the routes that it visits. `tokio_sleep_ms`: what
/// a tokio sleep of the VPC delay slept here (p50, p99), for the network figures. Returns
/// the cells, and the network figures when the VPC workload ran.
pub async fn run(m: &Meter<'_>, routes: &[Route], tokio_sleep_ms: (f64, f64)) -> Result<(Vec<Cell>, Option<Network>)> {
    let (o, vpc) = (m.o, &m.stack.vpc);
    let mut cells = Vec::new();
    let mut network = None;
    eprintln!("==> task workloads ({} s per cell, {} connections)", o.duration.as_secs_f64(), o.connections);
    for workload in TASK_WORKLOADS {
        if !o.wants_workload(workload) {
            continue;
        }
        let visiting: Vec<&Route> = routes.iter().filter(|r| r.workloads.contains(&workload)).collect();
        if workload == "get-vpc" {
            vpc.pg_relay.holds.clear();
            vpc.auth_relay.holds.clear();
        }
        cells.extend(rounds(m, workload, &visiting, o.rounds, o.warmup).await?);
        if workload == "get-vpc" {
            let holds = both(vpc.pg_relay.holds.summary(), vpc.auth_relay.holds.summary());
            network = Some(Network { delay_ms: vpc.delay.as_secs_f64() * 1000.0, holds, tokio_sleep_ms });
        }
    }
    Ok((cells, network))
}

/// `count` rounds of `workload`, each visiting the paths in a rotated order, so that a burst of
/// outside load (the cores are shared) lands on different paths; one cell per path, its
/// rounds merged (the median round is reported).
async fn rounds(
    m: &Meter<'_>,
    workload: &str,
    visiting: &[&Route],
    count: usize,
    warmup: Duration,
) -> Result<Vec<Cell>> {
    let mut rounds: Vec<Vec<Cell>> = vec![Vec::new(); visiting.len()];
    for round in 0..count {
        for k in 0..visiting.len() {
            let i = (k + round) % visiting.len();
            let load = m.task_load(workload, visiting[i]);
            let (cell, _) = m.cell(workload, visiting[i], load, &[], warmup).await?;
            rounds[i].push(cell);
        }
    }
    Ok(rounds.into_iter().map(Cell::from_rounds).collect())
}

/// One figure for both relays: the larger percentiles, all chunks.
fn both(mut pg: HoldSummary, auth: HoldSummary) -> HoldSummary {
    pg.chunks += auth.chunks;
    pg.p50_ms = pg.p50_ms.max(auth.p50_ms);
    pg.p99_ms = pg.p99_ms.max(auth.p99_ms);
    pg.max_ms = pg.max_ms.max(auth.max_ms);
    pg
}
