use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use anyhow::Context;
use platform::config::Env;
use platform::metrics::HttpMetrics;
use platform::service::Service;
use task_svc::config::{Config, DEFAULT_PORT};
use task_svc::{AppState, bind_unix, run_with_unix};

const SERVICE: Service = Service {
    name: "task-svc",
    health_path: "/tasks/health",
    default_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
    default_port: DEFAULT_PORT,
};

fn main() -> ExitCode {
    if let Some(code) = SERVICE.subcommand() {
        return code;
    }
    SERVICE.main(|| Config::from_source(&Env), serve)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = HttpMetrics::new();
    let (pool, listener) = SERVICE.start(&config.db, config.listen, config.metrics, metrics.registry()).await?;
    let unix = match &config.unix_socket {
        Some(path) => {
            let unix =
                bind_unix(path).with_context(|| format!("cannot listen on {} (UNIX_SOCKET_PATH)", path.display()))?;
            tracing::info!(path = %path.display(), "task-svc listening on the unix socket");
            Some(unix)
        }
        None => None,
    };
    let socket = config.unix_socket.clone();
    let result =
        run_with_unix(listener, unix, AppState::new(config, pool, metrics), platform::shutdown::signal()).await;
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    result?;
    Ok(())
}
