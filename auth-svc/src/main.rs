use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use auth_svc::config::{Config, DEFAULT_PORT};
use auth_svc::{AppState, run};
use platform::config::{Env, parse_or};

const USAGE: &str = "usage: auth-svc [healthcheck]\n\nConfigured by environment variables; see README.md.";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("healthcheck") => {
            let bind: IpAddr = parse_or(&Env, "BIND_ADDR", IpAddr::from([0, 0, 0, 0])).unwrap_or(IpAddr::from([127, 0, 0, 1]));
            let port = parse_or(&Env, "PORT", DEFAULT_PORT).unwrap_or(DEFAULT_PORT);
            return platform::healthcheck::run(platform::healthcheck::local_addr(bind, port), "/auth/health");
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("auth-svc: unknown argument {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    platform::telemetry::init("auth-svc");
    let config = match Config::from_source(&Env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(key = %e.key, "{e}");
            eprintln!("auth-svc: {e}");
            return ExitCode::from(78);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-svc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("auth-svc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let pool = config.db.pool();
    platform::db::migrate_when_ready(&pool, Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let metrics_addr = config.metrics;
    let state = AppState::new(config, pool);
    if let Some(addr) = metrics_addr {
        let metrics = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (METRICS_ADDR): {e}"))?;
        let app = platform::metrics::router(state.metrics.registry().clone());
        tokio::spawn(async move { axum::serve(metrics, app).await });
        tracing::info!(%addr, "metrics listening");
    }
    tracing::info!(addr = %listener.local_addr()?, "auth-svc listening");
    run(listener, state, platform::shutdown::signal()).await?;
    tracing::info!("auth-svc stopped");
    Ok(())
}
