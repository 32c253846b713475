//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs to stdout, written on the calling thread (one `write` per line).
pub fn init(service: &'static str) {
    install(service, std::io::stdout);
}

/// Logs to stdout through `tracing-appender`'s non-blocking writer: the calling thread formats
/// the line and queues it; a dedicated thread writes it (several lines per `write` under load),
/// so no request thread blocks on stdout. Lossless (`lossy(false)`: a full queue makes the
/// caller wait rather than drop lines). The guard writes what is queued when dropped: keep it
/// until `main` returns (the gateway leaves pingora through `Server::run`, not `run_forever`,
/// whose `std::process::exit` would skip the drop).
pub fn init_non_blocking(service: &'static str) -> WorkerGuard {
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(false).thread_name("log-writer").finish(std::io::stdout());
    install(service, writer);
    guard
}

fn install<W>(service: &'static str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(writer);
    // try_init: tests may initialise more than once.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
    tracing::debug!(service, "telemetry initialised");
}
