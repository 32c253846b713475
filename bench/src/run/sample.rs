//! The processes a cell watches, and their counters sampled before and after its load.

use std::collections::{BTreeMap, HashMap};

use crate::procstat::{self, ProcessCounters};

/// A process whose CPU, counters and memory each cell records.
pub struct Watched {
    pub name: &'static str,
    pub pid: u32,
    /// Its Prometheus endpoint, if any (the gateways' heap counters are read there).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Every watched process's [`ProcessCounters`] at one moment, with PostgreSQL's processes
/// (`pg:<pid>`) and the bench's finished children (`wrk`).
pub struct Sample(HashMap<String, ProcessCounters>);

impl Sample {
    /// Reads every counter now (0 for a process that cannot be read). `postgres`: the
    /// postmaster's pid; its backends are listed again at each sample, since they come and go.
    pub fn take(watched: &[Watched], postgres: Option<u32>) -> Self {
        let mut snap = HashMap::new();
        for w in watched {
            snap.insert(w.name.to_owned(), ProcessCounters::read(w.pid).unwrap_or_default());
        }
        if let Some(pm) = postgres {
            for pid in procstat::with_children(pm) {
                snap.insert(format!("pg:{pid}"), ProcessCounters::read(pid).unwrap_or_default());
            }
        }
        snap.insert("wrk".into(), ProcessCounters::children_of_this_process().unwrap_or_default());
        Sample(snap)
    }

    /// What each process consumed since `before`, PostgreSQL's processes summed as `postgres`
    /// (a backend started in between counts from 0).
    pub fn since(&self, before: &Sample) -> BTreeMap<String, ProcessCounters> {
        let mut out: BTreeMap<String, ProcessCounters> = BTreeMap::new();
        for (k, now) in &self.0 {
            let d = *now - before.0.get(k).copied().unwrap_or_default();
            let key = if k.starts_with("pg:") { "postgres".to_owned() } else { k.clone() };
            let sum = out.entry(key).or_default();
            *sum = *sum + d;
        }
        out
    }
}
