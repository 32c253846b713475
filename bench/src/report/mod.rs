//! The readable output (markdown tables) and the targets, evaluated from the measured cells.

mod counters;
mod tables;
mod targets;

pub use targets::targets;

use crate::results::Results;

/// The whole run as markdown: settings, tables, targets and problems.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    tables::header(&mut s, r);
    tables::throughput(&mut s, &r.cells);
    tables::peers(&mut s, &r.cells);
    if let Some(n) = &r.network {
        tables::network(&mut s, n, &r.cells);
    }
    if let Some(rc) = &r.revocations {
        tables::revocations(&mut s, rc);
    }
    tables::cpu_and_memory(&mut s, &r.cells);
    tables::context_switches(&mut s, &r.cells);
    counters::counters(&mut s, &r.cells, &r.counting);
    counters::callgrind(&mut s, &r.callgrind);
    tables::ready(&mut s, &r.ready_ms);
    if let Some(l) = &r.login {
        tables::login(&mut s, l);
    }
    tables::verdict(&mut s, r);
    s
}
