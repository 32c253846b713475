//! The running front door: its two listeners (the ALB's public one and the Cloud Map stand-in),
//! the targets they share, the health checker, and stopping in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::config::FrontDoorConfig;
use crate::health::health_loop;
use crate::pool::{Backend, BackendStatus, Pool, PoolKind};
use crate::proxy::{internal_proxy, public_proxy};
use crate::request_check::{CheckedListener, Peer};
use crate::upstream::EarlyResponseConnector;

/// What both listeners and the health checker share.
pub(crate) struct Shared {
    auth: Pool,
    tasks: Pool,
    pub(crate) client: Client<EarlyResponseConnector, Body>,
    pub(crate) upstream_timeout: Duration,
    /// The public listener's port, for `X-Forwarded-Port`.
    pub(crate) public_port: u16,
    /// Set once the public listener has stopped: the task pool is reached through it alone, so
    /// its targets are no longer probed (a gateway draining on shutdown is not a failure).
    public_stopped: AtomicBool,
}

impl Shared {
    pub(crate) fn pool(&self, kind: PoolKind) -> &Pool {
        match kind {
            PoolKind::Auth => &self.auth,
            PoolKind::Tasks => &self.tasks,
        }
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.auth.backends.iter().chain(self.tasks.backends.iter())
    }

    /// The targets the health checker probes: the auth pool while the internal listener serves
    /// it, the task pool until the public listener has stopped.
    pub(crate) fn probed(&self) -> impl Iterator<Item = &Arc<Backend>> {
        let tasks = if self.public_stopped.load(Ordering::Relaxed) { &[][..] } else { &self.tasks.backends[..] };
        self.auth.backends.iter().chain(tasks.iter())
    }
}

struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running front door: the public listener, the internal auth listener, the health checker.
/// Its log lines (targets entering or leaving the rotation, targets that failed) are `tracing`
/// events of target `front_door`.
pub struct FrontDoor {
    shared: Arc<Shared>,
    public: Option<Listener>,
    internal: Option<Listener>,
    health: JoinHandle<()>,
    drain: Duration,
}

/// Binds 127.0.0.1:`port` (0 = any). The error for a taken port names `what` and the `flag`
/// that chooses another.
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
    /// Serves on the two listeners. `targets` are (name, address, pool). Every target starts
    /// unhealthy, as a new ALB target does, and gets traffic once it has passed
    /// `healthy_threshold` checks.
    pub fn start(
        public: TcpListener,
        internal: TcpListener,
        targets: Vec<(String, SocketAddr, PoolKind)>,
        config: FrontDoorConfig,
    ) -> Result<Self> {
        let mut auth = Vec::new();
        let mut tasks = Vec::new();
        for (name, addr, kind) in targets {
            let backend = Arc::new(Backend::new(name, addr, kind));
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
            auth: Pool::new(auth),
            tasks: Pool::new(tasks),
            client,
            upstream_timeout: config.upstream_timeout,
            public_port: public.local_addr().context("front door address")?.port(),
            public_stopped: AtomicBool::new(false),
        });

        let public_app = Router::new().fallback(public_proxy).with_state(shared.clone());
        let internal_app = Router::new().fallback(internal_proxy).with_state(shared.clone());
        let public = serve(CheckedListener(public), public_app, config.client_idle_timeout)?;
        let internal = serve(internal, internal_app, config.client_idle_timeout)?;
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

    /// Every target's health and request count, auth pool first.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.shared.all().map(|b| b.status()).collect()
    }

    /// Stops the public listener: no new connections, in-flight requests get `drain` to finish.
    /// The task pool's health checks stop with it (nothing reaches the pool any more), so its
    /// targets stopping afterwards log no failed checks.
    pub async fn stop_public(&mut self) {
        if let Some(l) = self.public.take() {
            stop_listener(l, self.drain).await;
        }
        self.shared.public_stopped.store(true, Ordering::Relaxed);
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

/// Serves `app` on `listener` until [`Listener::stop`], over HTTP/1.1 with half-closed
/// connections kept open: a client that closes its sending side after a whole request still
/// gets the answer (RFC 9112 section 9.6: "a half-closed TCP connection does not delimit a
/// request message, nor does it imply that the client is no longer interested in a
/// response"). `axum::serve` builds hyper's connection with its default, which drops such a
/// request unanswered, and offers no way to change it. Each request carries the peer as
/// `ConnectInfo<L::Addr>`. A connection without a whole request head for `idle_timeout`
/// (idle, or a head sent too slowly) is closed (hyper's `header_read_timeout`, which runs
/// from when it waits for a head). On stop: no new connections, idle ones closed, busy ones
/// finish their request (hyper-util's `GracefulShutdown`, as `axum::serve` does).
fn serve<L>(mut listener: L, app: Router, idle_timeout: Duration) -> Result<Listener>
where
    L: axum::serve::Listener<Addr: Into<SocketAddrOf> + Clone + Send + Sync + 'static>,
{
    let addr = listener.local_addr().context("listener address")?.into().0;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.half_close(true).timer(TokioTimer::new()).header_read_timeout(idle_timeout);
        let graceful = GracefulShutdown::new();
        loop {
            let (io, peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.wait_for(|s| *s) => break,
            };
            let app = app.clone().map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer.clone()));
                req.map(Body::new)
            });
            let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::trace!("connection ended: {e}");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
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
