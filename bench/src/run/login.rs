//! The login workload: hashing capacity (one client, then saturated) and a flood of clients.

use std::time::Duration;

use anyhow::Result;

use super::cell::Meter;
use super::routes::Route;
use crate::results::{Cell, Login};
use crate::wrk;

/// Logins completed (200 or 401) per second of `r`.
fn completed_rps(r: &wrk::Run) -> f64 {
    let done: u64 = r.statuses.iter().filter(|(s, _)| *s == "200" || *s == "401").map(|(_, n)| n).sum();
    if r.duration_us == 0 { 0.0 } else { done as f64 * 1e6 / r.duration_us as f64 }
}

/// Runs the three login cells against auth-svc and returns their figures and the cells.
pub async fn run(m: &Meter<'_>) -> Result<(Login, [Cell; 3])> {
    let o = m.o;
    let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
    let auth = Route { name: "auth-svc", url: m.stack.auth.url(), mode: "bearer", edges: &[], workloads: &[] };
    eprintln!("==> login (HASH_CONCURRENCY default = {permits} permits)");
    let calib_secs = if o.quick { o.duration } else { o.duration.div_f64(2.0).max(Duration::from_secs(5)) };
    let (calib, calib_run) =
        m.cell("login-1", &auth, m.login_load(&auth.url, 1, calib_secs), &[401], Duration::ZERO).await?;
    let measured_connections = (permits * 4) as u32;
    let load = m.login_load(&auth.url, measured_connections, o.duration);
    let (measured, measured_run) = m.cell("login-n", &auth, load, &[401, 503], Duration::ZERO).await?;
    let flood_secs =
        if o.quick { o.duration.max(Duration::from_secs(3)) } else { o.duration.max(Duration::from_secs(15)) };
    let load = m.login_load(&auth.url, o.login_flood, flood_secs);
    let (flood, flood_run) = m.cell("login-flood", &auth, load, &[401, 503], Duration::ZERO).await?;
    let time_per_hash_ms = calib_run.latency_us.mean / 1000.0;
    let theoretical_rps = if time_per_hash_ms > 0.0 { permits as f64 * 1000.0 / time_per_hash_ms } else { 0.0 };
    let measured_rps = completed_rps(&measured_run);
    let login = Login {
        permits,
        time_per_hash_ms,
        theoretical_rps,
        measured_rps,
        measured_connections,
        ratio: if theoretical_rps > 0.0 { measured_rps / theoretical_rps } else { 0.0 },
        flood_connections: o.login_flood,
        flood_statuses: flood_run.statuses.clone(),
        flood_completed_rps: completed_rps(&flood_run),
        auth_rss_mib_measured: measured.peak_rss_mib.get("auth-svc").copied().unwrap_or(0.0),
        auth_rss_mib_flood: flood.peak_rss_mib.get("auth-svc").copied().unwrap_or(0.0),
    };
    Ok((login, [calib, measured, flood]))
}
