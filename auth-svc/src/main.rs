use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use auth_svc::config::{Config, DEFAULT_PORT};
use auth_svc::{AppState, run};
use platform::config::Env;
use platform::metrics::HttpMetrics;
use platform::service::Service;

const SERVICE: Service = Service {
    name: "auth-svc",
    health_path: "/auth/health",
    default_bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    default_port: DEFAULT_PORT,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("keygen") {
        return auth_svc::keygen::run(&args[1..]);
    }
    if let Some(code) = SERVICE.subcommand() {
        return code;
    }
    SERVICE.main(|| Config::from_source(&Env), serve)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = HttpMetrics::new();
    let (pool, listener) = SERVICE.start(&config.db, config.listen, config.metrics, metrics.registry()).await?;
    run(listener, AppState::new(config, pool, metrics), platform::shutdown::signal()).await?;
    Ok(())
}
