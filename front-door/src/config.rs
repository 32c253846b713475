//! The front door's settings, named after the ALB target group's.

use std::time::Duration;

/// Active health-check settings, named after the ALB target group's.
#[derive(Debug, Clone, Copy)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before an unhealthy target gets traffic again.
    pub healthy_threshold: u32,
    /// Consecutive failures before a healthy target leaves the rotation.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        // Faster than the ALB's 30 s default so a local failure shows within seconds.
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

/// Settings of the front door.
#[derive(Debug, Clone)]
pub struct FrontDoorConfig {
    pub health: HealthCheck,
    /// How long a proxied request may take (the ALB's idle timeout is 60 s).
    pub upstream_timeout: Duration,
    /// How long in-flight requests may finish after shutdown starts.
    pub drain: Duration,
    /// How long a client connection may go without a whole request head: idle between
    /// requests, or sending one too slowly. Then it is closed, as the ALB closes a client
    /// connection after its idle timeout (`idle_timeout.timeout_seconds`, 60 s by default).
    pub client_idle_timeout: Duration,
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        Self {
            health: HealthCheck::default(),
            upstream_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(60),
        }
    }
}
