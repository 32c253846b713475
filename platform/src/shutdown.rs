//! Graceful shutdown: a future that resolves on SIGTERM (what ECS sends) or Ctrl-C, and a way to
//! bound how long in-flight work may take after it.

use std::future::Future;
use std::time::Duration;

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = term => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// Runs `serve` (a server future that drains connections once `trigger` fires) and gives it
/// `grace` after the trigger to finish; returns when it finishes or when the grace runs out.
pub async fn serve_with_deadline<S, E>(
    serve: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> S,
    trigger: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), E>
where
    S: Future<Output = Result<(), E>>,
{
    let fired = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = fired.clone();
    let server = serve(Box::pin(async move {
        trigger.await;
        notify.notify_one();
    }));
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async { fired.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "shutdown grace elapsed with requests still in flight; exiting");
            Ok(())
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests for at
/// most `grace`. Handlers can extract the TCP peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    serve_with_deadline(
        |trigger| axum::serve(listener, app).with_graceful_shutdown(trigger).into_future(),
        shutdown,
        grace,
    )
    .await
}
