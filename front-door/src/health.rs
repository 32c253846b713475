//! Active health checks: every target probed each interval, moved in or out of the rotation
//! after its thresholds of consecutive results, as an ALB target group does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::HealthCheck;
use crate::door::Shared;

/// Probes every target still reached ([`Shared::probed`]) each `hc.interval` until aborted.
pub(crate) async fn health_loop(shared: Arc<Shared>, hc: HealthCheck) {
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // All targets are probed at once: each probe has its own timeout, so one hung target
        // does not delay the verdict on the others.
        let mut checks = tokio::task::JoinSet::new();
        for b in shared.probed() {
            let b = b.clone();
            checks.spawn(async move {
                let ok = platform::healthcheck::probe(b.addr, b.kind.health_path(), hc.timeout).await;
                (b, ok)
            });
        }
        while let Some(Ok((b, ok))) = checks.join_next().await {
            let healthy = b.healthy.load(Ordering::Relaxed);
            if ok == healthy {
                b.streak.store(0, Ordering::Relaxed);
                continue;
            }
            // A streak counts consecutive results that disagree with the current state.
            let streak = b.streak.fetch_add(1, Ordering::Relaxed) + 1;
            let threshold = if healthy { hc.unhealthy_threshold } else { hc.healthy_threshold };
            if streak >= threshold.max(1) {
                b.healthy.store(ok, Ordering::Relaxed);
                b.streak.store(0, Ordering::Relaxed);
                if ok {
                    tracing::info!("{} ({}) passed {streak} health checks: in rotation", b.name, b.addr);
                } else {
                    tracing::warn!(
                        "{} ({}) failed {streak} health checks on {}: out of rotation",
                        b.name,
                        b.addr,
                        b.kind.health_path()
                    );
                }
            }
        }
    }
}
