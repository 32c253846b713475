//! Puts the request's trace id on every log line written inside its spans: a top-level
//! `"trace_id"` field (32 hex digits) in JSON lines, ` trace_id=...` at the end of compact ones.
//! The id is the OpenTelemetry span's, sampled or not, so logs and X-Ray join on it.

use std::fmt;

use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a formatter (`json` says which kind) and adds `trace_id` to its lines.
pub struct WithTraceId<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceId<F> {
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(trace_id) = trace_id(event) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        if self.json && line.starts_with('{') {
            let rest = &line[1..];
            let comma = if rest.trim_start().starts_with('}') { "" } else { "," };
            write!(writer, "{{\"trace_id\":\"{trace_id}\"{comma}")?;
            writer.write_str(rest)
        } else {
            writeln!(writer, "{} trace_id={trace_id}", line.trim_end_matches('\n'))
        }
    }
}

/// The trace id of the innermost span around `event` (its explicit parent, else the current
/// span, then their ancestors) that has an OpenTelemetry span. Looked up in the registry, not
/// in the log layer's view: the log layer may not see the span at all (the gateway's request
/// spans are left out of it, see `telemetry`), the OpenTelemetry layer does.
fn trace_id(event: &Event<'_>) -> Option<TraceId> {
    tracing::dispatcher::get_default(|d| {
        let start = match event.parent() {
            Some(id) => id.clone(),
            None if event.is_contextual() => d.current_span().id()?.clone(),
            None => return None,
        };
        let registry = d.downcast_ref::<tracing_subscriber::Registry>()?;
        let mut span = registry.span(&start)?;
        loop {
            // No extension lock may be held here (the OpenTelemetry layer takes its own).
            let found = tracing_opentelemetry::get_otel_context(&span.id(), d)
                .map(|cx| cx.span().span_context().trace_id())
                .filter(|id| *id != TraceId::INVALID);
            if found.is_some() {
                return found;
            }
            span = span.parent()?;
        }
    })
}
