//! Target pools: which pool a path belongs to (the ALB listener rules), the targets with their
//! health, and round-robin over the healthy ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Which target pool a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Auth,
    Tasks,
}

impl PoolKind {
    /// The path of the pool's health check (the target group's `HealthCheckPath`).
    pub fn health_path(self) -> &'static str {
        match self {
            PoolKind::Auth => "/auth/health",
            PoolKind::Tasks => "/tasks/health",
        }
    }

    /// The service behind the pool, for error messages.
    pub(crate) fn service(self) -> &'static str {
        match self {
            PoolKind::Auth => "auth-svc",
            PoolKind::Tasks => "task-svc",
        }
    }

    /// The ALB listener rules: `/auth`, `/auth/*` and `/tasks`, `/tasks/*` (both forms, which
    /// the guide's `/tasks/*`-only rule missed). Like ALB path patterns, case-sensitive.
    pub fn route(path: &str) -> Option<Self> {
        let under =
            |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under("/auth") {
            Some(PoolKind::Auth)
        } else if under("/tasks") {
            Some(PoolKind::Tasks)
        } else {
            None
        }
    }
}

/// One target: an auth-svc instance, or the gateway of one task.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub kind: PoolKind,
    pub(crate) healthy: AtomicBool,
    pub(crate) requests: AtomicU64,
    /// Consecutive health-check results that disagree with `healthy`.
    pub(crate) streak: AtomicU32,
}

impl Backend {
    /// A new target: unhealthy until it passes its health checks, as a new ALB target is.
    pub(crate) fn new(name: String, addr: SocketAddr, kind: PoolKind) -> Self {
        Self {
            name,
            addr,
            kind,
            healthy: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            streak: AtomicU32::new(0),
        }
    }

    pub(crate) fn status(&self) -> BackendStatus {
        BackendStatus {
            name: self.name.clone(),
            addr: self.addr,
            kind: self.kind,
            healthy: self.healthy.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one target, for the tests and the run command's status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    pub name: String,
    pub addr: SocketAddr,
    pub kind: PoolKind,
    pub healthy: bool,
    /// Requests the front door (either listener) sent to this target.
    pub requests: u64,
}

/// The targets of one [`PoolKind`].
pub(crate) struct Pool {
    pub(crate) backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(backends: Vec<Arc<Backend>>) -> Self {
        Self { backends, next: AtomicUsize::new(0) }
    }

    /// Round-robin over the targets that are healthy right now.
    pub(crate) fn pick(&self) -> Option<Arc<Backend>> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &self.backends[(start + i) % n]).find(|b| b.healthy.load(Ordering::Relaxed)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_alb_rules() {
        assert_eq!(PoolKind::route("/auth"), Some(PoolKind::Auth));
        assert_eq!(PoolKind::route("/auth/login"), Some(PoolKind::Auth));
        for api_key_path in ["/auth/token", "/auth/api-keys", "/auth/api-keys/0b6f5f8e-3c1e-4d7a-9a59-1f0e7c2d4b8a"] {
            assert_eq!(PoolKind::route(api_key_path), Some(PoolKind::Auth), "{api_key_path}");
        }
        assert_eq!(PoolKind::route("/tasks"), Some(PoolKind::Tasks));
        assert_eq!(PoolKind::route("/tasks/12"), Some(PoolKind::Tasks));
        assert_eq!(PoolKind::route("/tasksx"), None);
        assert_eq!(PoolKind::route("/authz"), None);
        assert_eq!(PoolKind::route("/"), None);
        assert_eq!(PoolKind::route("/Tasks"), None);
    }
}
