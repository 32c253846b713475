//! The process shell both axum services share: the `healthcheck` subcommand, config loading
//! that fails fast, the runtime, migrations before listening, and the metrics listener.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{ConfigError, Env, parse_or};
use crate::db::DbConfig;

/// Exit code for a configuration error (EX_CONFIG), so a crash loop in ECS says why.
const EXIT_CONFIG: u8 = 78;

pub struct Service {
    pub name: &'static str,
    pub health_path: &'static str,
    pub default_bind: IpAddr,
    pub default_port: u16,
}

impl Service {
    /// Handles the command line. `None` means: no subcommand, go on and serve.
    pub fn subcommand(&self) -> Option<ExitCode> {
        let usage =
            format!("usage: {} [healthcheck]\n\nConfigured by environment variables; see README.md.", self.name);
        match std::env::args().nth(1).as_deref() {
            None => None,
            Some("healthcheck") => {
                // Only PORT and BIND_ADDR matter here; the probe must not fail on other config.
                let bind = parse_or(&Env, "BIND_ADDR", self.default_bind).unwrap_or(self.default_bind);
                let port = parse_or(&Env, "PORT", self.default_port).unwrap_or(self.default_port);
                Some(crate::healthcheck::run(crate::healthcheck::local_addr(bind, port), self.health_path))
            }
            Some("-h" | "--help") => {
                println!("{usage}");
                Some(ExitCode::SUCCESS)
            }
            Some(other) => {
                eprintln!("{}: unknown argument {other:?}\n{usage}", self.name);
                Some(ExitCode::from(2))
            }
        }
    }

    /// Initialises logging, loads the config (exit 78 naming the bad key), and runs `serve` on a
    /// multi-threaded runtime.
    pub fn main<C, Fut>(&self, load: impl FnOnce() -> Result<C, ConfigError>, serve: impl FnOnce(C) -> Fut) -> ExitCode
    where
        Fut: Future<Output = anyhow::Result<()>>,
    {
        // Dropped last, after the runtime: flushes the spans the shutdown produced.
        let _tracing = crate::telemetry::init(self.name);
        let config = match crate::telemetry::check(&crate::config::Env, self.name).and_then(|()| load()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(key = %e.key, "{e}");
                eprintln!("{}: {e}", self.name);
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{}: cannot start the runtime: {e}", self.name);
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(serve(config)) {
            Ok(()) => {
                tracing::info!("{} stopped", self.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("{}: {e:#}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    /// Migrates the database (waiting up to a minute for it), then binds the service's listener
    /// and the metrics listener. Not listening until migrated means not healthy until usable.
    /// Adds the process metrics, `taskmgmt_build_info` and the pool gauges to `registry`.
    pub async fn start(
        &self,
        db: &DbConfig,
        listen: SocketAddr,
        metrics: Option<SocketAddr>,
        registry: &Registry,
    ) -> anyhow::Result<(PgPool, TcpListener)> {
        let pool = db.pool();
        // Every crate of the workspace takes the workspace version, so platform's is the binary's.
        crate::process_metrics::register(registry, self.name, env!("CARGO_PKG_VERSION"))
            .context("registering process metrics")?;
        registry
            .register(Box::new(crate::pool_metrics::PoolCollector::new(pool.clone())?))
            .context("registering pool metrics")?;
        crate::tracing_otel::register(registry).context("registering span export metrics")?;
        crate::db::migrate_when_ready(&pool, Duration::from_secs(60)).await.context("database migration failed")?;
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen} (BIND_ADDR/PORT)"))?;
        if let Some(addr) = metrics {
            let metrics_listener =
                TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (METRICS_ADDR)"))?;
            let app = crate::metrics::router(registry.clone());
            tokio::spawn(async move { axum::serve(metrics_listener, app).await });
            tracing::info!(%addr, "metrics listening");
        }
        tracing::info!(addr = %listener.local_addr()?, "{} listening", self.name);
        Ok((pool, listener))
    }
}

/// Adds the `bearer` security scheme to an OpenAPI document.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
