//! Issue 9's revocation cost, from the gateway whose auth-svc holds many live revocations:
//! the bytes of its first, full pull and of its steady-state pulls (counted by the relay in
//! front of that auth-svc).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::results::RevocationCost;
use crate::scrape;
use crate::stack::Revoked;

const PULLS: &str = "gateway_revocation_pulls_total";
const SUCCESS: &str = r#"outcome="success""#;

/// The revoked gateway once it held every seeded revocation.
pub struct Pulled {
    /// `gateway_revocations_live` then.
    pub live: i64,
    /// Bytes its pulls had moved by then.
    pub bytes: u64,
    /// Its successful pulls by then.
    pub pulls: f64,
}

/// Waits (up to 120 s) until the revoked gateway holds every seeded revocation.
pub async fn pulled(r: &Revoked) -> Result<Pulled> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live = scrape::sum(r.gateway.metrics, "gateway_revocations_live", "").await;
        if live >= r.seeded as f64 {
            let pulls = scrape::sum(r.gateway.metrics, PULLS, SUCCESS).await;
            return Ok(Pulled { live: live as i64, bytes: r.relay.bytes.get().1, pulls });
        }
        if Instant::now() > deadline {
            bail!("gateway-revoked holds {live} of {} revocations after 120 s", r.seeded);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cost, from the pulls since `seen`: those were steady-state pulls (nothing changed), and
/// the pulls before `seen` beyond the first are taken to have been as small.
pub async fn cost(r: &Revoked, seen: &Pulled) -> RevocationCost {
    let pulls_now = scrape::sum(r.gateway.metrics, PULLS, SUCCESS).await;
    let bytes_now = r.relay.bytes.get().1;
    let steady_pulls = (pulls_now - seen.pulls).max(0.0) as u64;
    let empty_pull_bytes =
        if steady_pulls == 0 { f64::NAN } else { (bytes_now - seen.bytes) as f64 / steady_pulls as f64 };
    let extra_pulls = (seen.pulls - 1.0).max(0.0);
    let full_pull_bytes = seen.bytes.saturating_sub((extra_pulls * empty_pull_bytes.max(0.0)) as u64);
    RevocationCost { seeded: r.seeded, live_in_gateway: seen.live, full_pull_bytes, empty_pull_bytes, steady_pulls }
}
