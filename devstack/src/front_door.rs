//! The local stand-in for the ALB (and, on a second port, for Cloud Map's health-checked
//! `auth-service` records): path routing to target pools, round-robin over healthy targets,
//! active health checks, and JSON errors when no target can answer.
//!
//! It is deliberately small: one HTTP/1.1 hop with streaming bodies, hop-by-hop headers
//! removed and `X-Forwarded-*` added, as the ALB does. No retries: the ALB does not retry a
//! request either, so what clients see locally during a failure is what they see on AWS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::serve::IncomingStream;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use platform::error_body::ErrorBody;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::forwarded::{self, strip_hop_by_hop};
use crate::process::LogSink;
use crate::request_check::{CheckedListener, Peer};
use crate::upstream::{ClientBody, EarlyResponseConnector};

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

/// Which target pool a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Auth,
    Tasks,
}

impl PoolKind {
    pub fn health_path(self) -> &'static str {
        match self {
            PoolKind::Auth => "/auth/health",
            PoolKind::Tasks => "/tasks/health",
        }
    }

    fn service(self) -> &'static str {
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
    healthy: AtomicBool,
    requests: AtomicU64,
    streak: AtomicU32,
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

struct Pool {
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

impl Pool {
    /// Round-robin over the targets that are healthy right now.
    fn pick(&self) -> Option<Arc<Backend>> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &self.backends[(start + i) % n]).find(|b| b.healthy.load(Ordering::Relaxed)).cloned()
    }
}

struct Shared {
    auth: Pool,
    tasks: Pool,
    client: Client<EarlyResponseConnector, Body>,
    upstream_timeout: Duration,
    /// The public listener's port, for `X-Forwarded-Port`.
    public_port: u16,
    logs: LogSink,
}

impl Shared {
    fn pool(&self, kind: PoolKind) -> &Pool {
        match kind {
            PoolKind::Auth => &self.auth,
            PoolKind::Tasks => &self.tasks,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.auth.backends.iter().chain(self.tasks.backends.iter())
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
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        Self {
            health: HealthCheck::default(),
            upstream_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(10),
        }
    }
}

struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running front door: the public listener, the internal auth listener, the health checker.
pub struct FrontDoor {
    shared: Arc<Shared>,
    public: Option<Listener>,
    internal: Option<Listener>,
    health: JoinHandle<()>,
    drain: Duration,
}

/// Binds 127.0.0.1:`port` (0 = any), with a message that says what to do when it is taken.
pub async fn bind(port: u16, what: &str, flag: &str) -> Result<TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{addr} ({what}) is already in use - is another devstack running? Choose another port with {flag}"
            )
        } else {
            anyhow::anyhow!("could not listen on {addr} ({what}): {e}")
        }
    })
}

impl FrontDoor {
    /// Serves on the two listeners. Every target starts unhealthy, as a new ALB target does,
    /// and gets traffic once it has passed `healthy_threshold` checks.
    pub fn start(
        public: TcpListener,
        internal: TcpListener,
        targets: Vec<(String, SocketAddr, PoolKind)>,
        config: FrontDoorConfig,
        logs: LogSink,
    ) -> Result<Self> {
        let mut auth = Vec::new();
        let mut tasks = Vec::new();
        for (name, addr, kind) in targets {
            let backend = Arc::new(Backend {
                name,
                addr,
                kind,
                healthy: AtomicBool::new(false),
                requests: AtomicU64::new(0),
                streak: AtomicU32::new(0),
            });
            match kind {
                PoolKind::Auth => auth.push(backend),
                PoolKind::Tasks => tasks.push(backend),
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the services' keep-alive so we never reuse a connection they closed.
            .pool_idle_timeout(Duration::from_secs(30))
            .build(EarlyResponseConnector::new(connector));
        let shared = Arc::new(Shared {
            auth: Pool { backends: auth, next: AtomicUsize::new(0) },
            tasks: Pool { backends: tasks, next: AtomicUsize::new(0) },
            client,
            upstream_timeout: config.upstream_timeout,
            public_port: public.local_addr().context("front door address")?.port(),
            logs,
        });

        let public_app = Router::new().fallback(public_proxy).with_state(shared.clone());
        let internal_app = Router::new().fallback(internal_proxy).with_state(shared.clone());
        let public = serve::<_, Peer>(CheckedListener(public), public_app)?;
        let internal = serve::<_, SocketAddr>(internal, internal_app)?;
        let health = tokio::spawn(health_loop(shared.clone(), config.health));
        Ok(Self { shared, public: Some(public), internal: Some(internal), health, drain: config.drain })
    }

    /// The ALB stand-in's address.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().map(|l| l.addr)
    }

    /// The Cloud Map stand-in's address (balances over healthy auth-svc instances).
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal.as_ref().map(|l| l.addr)
    }

    pub fn backends(&self) -> Vec<BackendStatus> {
        self.shared
            .all()
            .map(|b| BackendStatus {
                name: b.name.clone(),
                addr: b.addr,
                kind: b.kind,
                healthy: b.healthy.load(Ordering::Relaxed),
                requests: b.requests.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops the public listener: no new connections, in-flight requests get `drain` to finish.
    pub async fn stop_public(&mut self) {
        if let Some(l) = self.public.take() {
            stop_listener(l, self.drain).await;
        }
    }

    /// Stops the internal listener and the health checks.
    pub async fn stop_internal(&mut self) {
        if let Some(l) = self.internal.take() {
            stop_listener(l, self.drain).await;
        }
        self.health.abort();
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        self.health.abort();
        for l in [self.public.take(), self.internal.take()].into_iter().flatten() {
            l.task.abort();
        }
    }
}

fn serve<L, C>(listener: L, app: Router) -> Result<Listener>
where
    L: axum::serve::Listener<Addr: Into<SocketAddrOf> + std::fmt::Debug>,
    C: Clone + Send + Sync + 'static + for<'a> Connected<IncomingStream<'a, L>>,
{
    let addr = listener.local_addr().context("listener address")?.into().0;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<C>())
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(Listener { addr, stop, task })
}

/// A listener's own address, whatever its connection-info type.
struct SocketAddrOf(SocketAddr);

impl From<SocketAddr> for SocketAddrOf {
    fn from(addr: SocketAddr) -> Self {
        Self(addr)
    }
}

impl From<Peer> for SocketAddrOf {
    fn from(peer: Peer) -> Self {
        Self(peer.addr)
    }
}

async fn stop_listener(mut l: Listener, drain: Duration) {
    let _ = l.stop.send(true);
    if tokio::time::timeout(drain, &mut l.task).await.is_err() {
        l.task.abort();
    }
}

async fn health_loop(shared: Arc<Shared>, hc: HealthCheck) {
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // All targets are probed at once: each probe has its own timeout, so one hung target
        // does not delay the verdict on the others.
        let mut checks = tokio::task::JoinSet::new();
        for b in shared.all() {
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
                let msg = if ok {
                    format!("{} ({}) passed {streak} health checks: in rotation", b.name, b.addr)
                } else {
                    format!(
                        "{} ({}) failed {streak} health checks on {}: out of rotation",
                        b.name,
                        b.addr,
                        b.kind.health_path()
                    )
                };
                shared.logs.line("front-door", &msg);
            }
        }
    }
}

/// The methods the load balancer forwards (the `Allow` of its own 405s).
const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// The ALB listener: its own checks first (request_check, TRACE, the internal
/// `/auth/validate`), then the listener rules.
async fn public_proxy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    if let Some(rejection) = peer.conn.take_rejection() {
        let mut resp = ErrorBody::response(rejection.status, rejection.message);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    if req.method() == Method::TRACE || req.method() == Method::CONNECT {
        // "Troubleshoot your Application Load Balancers", HTTP 405 (TRACE); the ALB does not
        // tunnel either. RFC 9110 section 15.5.6: a 405 carries `Allow`. CONNECT's bytes after
        // the head are not HTTP, so the connection is closed.
        let message = format!("The {} method is not supported", req.method());
        let mut resp = ErrorBody::response(StatusCode::METHOD_NOT_ALLOWED, message);
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
        if req.method() == Method::CONNECT {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return resp;
    }
    let path = req.uri().path();
    // Internal: the gateways reach it through Cloud Map, never through the load balancer,
    // whose listener answers it with a fixed 404 like any path without a rule.
    if path == INTERNAL_PATH {
        return ErrorBody::response(StatusCode::NOT_FOUND, NO_ROUTE);
    }
    let Some(kind) = PoolKind::route(path) else {
        return ErrorBody::response(StatusCode::NOT_FOUND, NO_ROUTE);
    };
    let listener_port = shared.public_port;
    forward(&shared, kind, Some((peer.addr, listener_port)), req).await
}

/// The body of every 404 of the ALB's listener rules.
const NO_ROUTE: &str = "No route for this path: the API is under /auth and /tasks";

/// auth-svc's token validation for the gateways; not routed by the public listener.
pub const INTERNAL_PATH: &str = "/auth/validate";

/// The Cloud Map stand-in: every path goes to the auth pool, and no `X-Forwarded-*` is added
/// because on ECS this hop is a DNS answer, not a proxy.
async fn internal_proxy(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    forward(&shared, PoolKind::Auth, None, req).await
}

/// Sends `req` to a healthy target of `kind`. `client` is the client's address and the public
/// listener's port (the ALB's headers); `None` on the Cloud Map stand-in.
async fn forward(shared: &Shared, kind: PoolKind, client: Option<(SocketAddr, u16)>, req: Request) -> Response {
    let Some(backend) = shared.pool(kind).pick() else {
        return ErrorBody::response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("No healthy {} instance is available, retry later", kind.service()),
        );
    };
    backend.requests.fetch_add(1, Ordering::Relaxed);

    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = match format!("http://{}{path_and_query}", backend.addr).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return ErrorBody::response(StatusCode::BAD_REQUEST, "The request target is not a valid URI"),
    };
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if let Some((addr, port)) = client {
        forwarded::drop_invalid_names(&mut parts.headers);
        forwarded::add_forwarded(&mut parts.headers, addr, port);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        forwarded::add_trace_id(&mut parts.headers, now);
    }
    let body = ClientBody::new(body);
    let client_body_failed = body.failed.clone();
    let upstream = Request::from_parts(parts, Body::new(body));

    match tokio::time::timeout(shared.upstream_timeout, shared.client.request(upstream)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(_)) if client_body_failed.load(Ordering::Relaxed) => {
            let mut resp = ErrorBody::response(
                StatusCode::BAD_REQUEST,
                "The request body is malformed: its chunked encoding or length is not valid HTTP/1.1",
            );
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Ok(Err(e)) => {
            shared.logs.line("front-door", &format!("{} ({}) failed: {e}", backend.name, backend.addr));
            ErrorBody::response(StatusCode::BAD_GATEWAY, format!("The {} instance did not answer", kind.service()))
        }
        Err(_) => ErrorBody::response(
            StatusCode::GATEWAY_TIMEOUT,
            format!("The {} instance did not answer in time", kind.service()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_alb_rules() {
        assert_eq!(PoolKind::route("/auth"), Some(PoolKind::Auth));
        assert_eq!(PoolKind::route("/auth/login"), Some(PoolKind::Auth));
        assert_eq!(PoolKind::route("/tasks"), Some(PoolKind::Tasks));
        assert_eq!(PoolKind::route("/tasks/12"), Some(PoolKind::Tasks));
        assert_eq!(PoolKind::route("/tasksx"), None);
        assert_eq!(PoolKind::route("/authz"), None);
        assert_eq!(PoolKind::route("/"), None);
        assert_eq!(PoolKind::route("/Tasks"), None);
    }
}
