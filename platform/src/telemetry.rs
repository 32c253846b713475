//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::tracing_otel::TracingGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Checks `LOG_FORMAT`: unset, empty, `compact` (the default) or `json`, any case. Called by
/// every binary before its other settings, so a typo stops it with exit 78 naming the key
/// instead of logging in a format CloudWatch does not parse.
pub fn check_log_format(source: &impl crate::config::Source) -> Result<(), crate::config::ConfigError> {
    match source.get("LOG_FORMAT") {
        None => Ok(()),
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("json") || v.eq_ignore_ascii_case("compact") => Ok(()),
        Some(v) => Err(crate::config::ConfigError::new("LOG_FORMAT", format!("expected json or compact, got {v:?}"))),
    }
}

/// Checks the settings logging and tracing read at start-up: [`check_log_format`] and the
/// `OTEL_*` variables ([`crate::tracing_otel::settings`]).
pub fn check(source: &impl crate::config::Source, service: &str) -> Result<(), crate::config::ConfigError> {
    check_log_format(source)?;
    crate::tracing_otel::settings(source, service).map(|_| ())
}

/// Logs to stdout, written on the calling thread (one `write` per line), and starts tracing
/// ([`crate::tracing_otel`]). Keep the guard until `main` returns: it flushes the spans.
pub fn init(service: &'static str) -> TracingGuard {
    install(service, std::io::stdout)
}

/// Logs to stdout through `tracing-appender`'s non-blocking writer: the calling thread formats
/// the line and queues it; a dedicated thread writes it (the lines queued meanwhile in one
/// `write`), so no request thread blocks on stdout. Lossless (`lossy(false)`: a full queue makes the
/// caller wait rather than drop lines). Keep the returned [`NonBlockingLogs`] until `main`
/// returns: dropped, it writes what is queued and flushes the spans (the gateway leaves pingora
/// through `Server::run`, not `run_forever`, whose `std::process::exit` would skip the drop).
pub fn init_non_blocking(service: &'static str) -> NonBlockingLogs {
    // The writer thread drains every queued line, then flushes (tracing-appender's worker):
    // behind a `BufWriter` the lines queued together leave in one `write` (up to 8 KiB) where
    // stdout's own line buffering made one per line.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let lines = JsonLines { writer: json_logs().then(|| writer.clone()) };
    let tracing = install(service, writer);
    NonBlockingLogs { lines, _writer: guard, _tracing: tracing }
}

/// What [`init_non_blocking`] set up. Dropping it writes the queued lines, then flushes the
/// spans (fields drop in this order).
pub struct NonBlockingLogs {
    /// The stream's writer for whole JSON records ([`JsonLines`]).
    pub lines: JsonLines,
    _writer: WorkerGuard,
    _tracing: TracingGuard,
}

/// Whole JSON lines written to the log stream beside tracing's events, through the same queue
/// (one message per line, so lines of different threads never interleave). For a record made
/// on every request, where a `tracing` event's dispatch, field visitor and JSON formatter cost
/// several times the serialization of a struct (the gateway's access line: docs/benchmarks.md).
/// Holds a writer only when the logs are JSON (`LOG_FORMAT=json`, [`JsonLines::is_json`]);
/// otherwise [`JsonLines::write`] writes nothing and the caller logs its record as an event.
#[derive(Clone, Default)]
pub struct JsonLines {
    writer: Option<NonBlocking>,
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines").field("json", &self.writer.is_some()).finish()
    }
}

impl JsonLines {
    /// Whether the logs are JSON: [`JsonLines::write`] writes.
    pub fn is_json(&self) -> bool {
        self.writer.is_some()
    }

    /// Writes `record` as one JSON line (`serde_json`, then a newline); nothing when the logs
    /// are not JSON. A record that fails to serialize (a map with non-string keys; a plain
    /// struct cannot) is dropped with a warning naming the error, never half-written.
    pub fn write<T: serde::Serialize>(&self, record: &T) {
        let Some(writer) = &self.writer else { return };
        thread_local! {
            // Reused per thread: the writer copies the line into its queue.
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            match serde_json::to_writer(&mut *line, record) {
                Ok(()) => {
                    line.push(b'\n');
                    // `NonBlocking::write` queues the whole buffer as one message and cannot fail
                    // short (lossless: it waits for room).
                    let _ = std::io::Write::write_all(&mut writer.make_writer(), line);
                }
                Err(e) => tracing::warn!(error = %e, "a log record did not serialize; dropped"),
            }
        });
    }
}

/// Whether `LOG_FORMAT` asks for JSON lines (any case; anything else is the compact format,
/// and [`check_log_format`] refuses a typo at start-up).
fn json_logs() -> bool {
    std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

/// `RUST_LOG`'s filter (default `info`), as the logs use it.
fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Runs `probe` (a `tracing::enabled!`) under a subscriber of `RUST_LOG`'s filter alone, and
/// returns its answer: whether the logs would take such an event. For a caller that writes a
/// record of its own ([`JsonLines`]) and asks once, at start-up. Asking the process's subscriber
/// instead would leave its per-layer filters' answers on the calling thread when no event
/// follows, and the next span made on that thread would skip the OpenTelemetry layer
/// (tokio-rs/tracing#2519).
pub fn under_env_filter<R>(probe: impl FnOnce() -> R) -> R {
    use tracing_subscriber::layer::SubscriberExt as _;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(env_filter()), probe)
}

/// The crates whose spans become OpenTelemetry spans (at `info` and above, whatever `RUST_LOG`
/// says); libraries' spans (tonic, hyper, sqlx) are left out, the exporter's own above all.
const TRACED_CRATES: [&str; 4] = ["gateway", "task_svc", "auth_svc", "platform"];

fn install<W>(service: &'static str, writer: W) -> TracingGuard
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = env_filter();
    let json = json_logs();
    // A bad setting is reported by `check` (exit 78); here it means: no exporter.
    let settings =
        crate::tracing_otel::settings(&crate::config::Env, service).unwrap_or_else(|_| crate::tracing_otel::Settings {
            endpoint: None,
            sampler: crate::tracing_otel::SamplerChoice { parent_based: true, ratio: 0.0 },
            service_name: service.to_owned(),
        });
    let mut no_export = settings.clone();
    no_export.endpoint = None;
    let (tracer, guard) = match crate::tracing_otel::tracer(&settings) {
        Ok(t) => {
            crate::tracing_otel::install_request_sampling(&settings);
            t
        }
        Err(e) => {
            eprintln!("{service}: cannot start the span exporter ({e}); trace ids in logs only");
            crate::tracing_otel::install_request_sampling(&no_export);
            crate::tracing_otel::tracer(&no_export).expect("no thread to start without an exporter")
        }
    };
    let traced =
        tracing_subscriber::filter::Targets::new().with_targets(TRACED_CRATES.map(|c| (c, tracing::Level::INFO)));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_level(false)
        .with_target(false)
        .with_filter(traced);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_writer(writer);
    let fmt = if json {
        let format =
            tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(true).with_span_list(false);
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .event_format(crate::tracing_otel::WithTraceId::new(format.with_target(false), true))
            .with_filter(filter)
            .boxed()
    } else {
        let format = tracing_subscriber::fmt::format().compact().with_target(false);
        fmt.compact().event_format(crate::tracing_otel::WithTraceId::new(format, false)).with_filter(filter).boxed()
    };
    // try_init: tests may initialise more than once.
    let _ = tracing_subscriber::registry().with(otel).with(fmt).try_init();
    tracing::debug!(service, "telemetry initialised");
    guard
}

#[cfg(test)]
mod tests {
    use super::check_log_format;
    use std::collections::HashMap;

    #[test]
    fn log_format_is_json_or_compact() {
        let env = |v: &str| HashMap::from([("LOG_FORMAT".to_owned(), v.to_owned())]);
        for ok in ["json", "JSON", "compact", ""] {
            assert!(check_log_format(&env(ok)).is_ok(), "{ok:?}");
        }
        assert!(check_log_format(&HashMap::<String, String>::new()).is_ok());
        let e = check_log_format(&env("xml")).unwrap_err();
        assert_eq!(e.key, "LOG_FORMAT");
        assert!(e.reason.contains("xml"), "{}", e.reason);
    }
}
