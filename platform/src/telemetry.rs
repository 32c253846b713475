//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

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
/// the line and queues it; a dedicated thread writes it (several lines per `write` under load),
/// so no request thread blocks on stdout. Lossless (`lossy(false)`: a full queue makes the
/// caller wait rather than drop lines). The guard writes what is queued when dropped: keep it
/// until `main` returns (the gateway leaves pingora through `Server::run`, not `run_forever`,
/// whose `std::process::exit` would skip the drop).
pub fn init_non_blocking(service: &'static str) -> (WorkerGuard, TracingGuard) {
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(false).thread_name("log-writer").finish(std::io::stdout());
    let tracing = install(service, writer);
    (guard, tracing)
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

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
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
