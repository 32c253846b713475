//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs to stdout, written on the calling thread (one `write` per line).
pub fn init(service: &'static str) {
    install(service, std::io::stdout);
}

/// Logs to stdout through a background thread: a request thread formats its line and hands it
/// over (`tracing-appender`), and the thread writes whatever has queued up in one `write` (a
/// buffer flushed whenever the queue runs empty), so under load lines share system calls and
/// no request waits for stdout. Nothing is dropped: a full queue (128,000 lines) makes the
/// logging thread wait, as a blocking stdout would. Keep the guard alive; dropping it flushes.
/// A process that leaves through `std::process::exit` loses at most the lines of its last
/// moments (the queue is flushed every time it runs empty).
pub fn init_non_blocking(service: &'static str) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
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
