//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
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
