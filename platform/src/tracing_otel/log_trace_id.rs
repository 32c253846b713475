//! Puts the request's trace id on every log line written inside its spans: a top-level
//! `"trace_id"` field (32 hex digits) in JSON lines, ` trace_id=...` at the end of compact ones.
//! The id is the OpenTelemetry span's, sampled or not, so logs and X-Ray join on it. An event
//! that has a `trace_id` field of its own is left as it is.

use std::fmt;

use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The trace id of a span, cached in its extensions after the first lookup.
#[derive(Clone, Copy)]
struct CachedTraceId(TraceId);

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
        // An event with a `trace_id` field of its own (the gateway's, whose unsampled requests
        // have no span to look it up in) already carries it.
        let own = event.metadata().fields().field("trace_id").is_some();
        let Some(trace_id) = (!own).then(|| trace_id(ctx)).flatten() else {
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

/// The trace id of the innermost span around the event that has an OpenTelemetry span.
fn trace_id<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<TraceId>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    for span in ctx.event_scope()? {
        if let Some(CachedTraceId(id)) = span.extensions().get::<CachedTraceId>() {
            return Some(*id);
        }
        // No extension lock may be held here (the OpenTelemetry layer takes its own).
        let found = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(&span.id(), d))
            .map(|cx| cx.span().span_context().trace_id())
            .filter(|id| *id != TraceId::INVALID);
        if let Some(id) = found {
            span.extensions_mut().insert(CachedTraceId(id));
            return Some(id);
        }
    }
    None
}
