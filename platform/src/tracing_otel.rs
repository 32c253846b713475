//! OpenTelemetry traces for the three services: one tracer provider per process, fed by the
//! `tracing` spans of our crates (through `tracing-opentelemetry`), exported over OTLP/gRPC to the
//! collector named by `OTEL_EXPORTER_OTLP_ENDPOINT` (the ADOT sidecar on ECS,
//! `http://127.0.0.1:4317`).
//!
//! Settings, all standard (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>):
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: unset or empty means no
//!   exporter. Spans still get ids (every log line of a request carries `trace_id`), nothing is
//!   recorded for a root span, and a caller's decision is passed on.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` only (the SDK reads timeout, headers, compression).
//! - `OTEL_TRACES_SAMPLER`: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
//!   `parentbased_always_off`, `parentbased_traceidratio` (the default).
//! - `OTEL_TRACES_SAMPLER_ARG`: the ratio, 0..=1 (default 1.0, as the specification says; ECS
//!   sets 0.05).
//! - `OTEL_SERVICE_NAME` (default: the binary's name), `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! Trace ids are X-Ray's (epoch seconds in the first 32 bits), so the collector can hand them to
//! X-Ray unchanged. Spans are queued (bounded, [`QUEUE_CAPACITY`]) and exported in batches by a
//! thread of its own: a request never waits for an export; a full queue drops the span and counts
//! it in `otel_spans_dropped_total{reason="queue_full"}`. [`TracingGuard`] flushes at exit.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    IdGenerator, Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
};
use prometheus::{IntCounterVec, Opts, Registry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{ConfigError, Source};
use crate::trace_header::Incoming;

mod export;
mod log_trace_id;
mod request_start;

pub use export::QUEUE_CAPACITY;
pub use log_trace_id::WithTraceId;
pub(crate) use request_start::install as install_request_sampling;
pub use request_start::{RequestSampling, TraceStart, request_sampling};

/// What [`settings`] read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The OTLP/gRPC endpoint; `None`: no exporter.
    pub endpoint: Option<String>,
    /// The sampler for spans without a caller's decision, and whether a caller's decides.
    pub sampler: SamplerChoice,
    pub service_name: String,
}

/// `OTEL_TRACES_SAMPLER` and its ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerChoice {
    /// `parentbased_*`: a caller's sampled flag decides.
    pub parent_based: bool,
    /// The ratio of new traces sampled (0 = `always_off`, 1 = `always_on`).
    pub ratio: f64,
}

/// The default `OTEL_TRACES_SAMPLER_ARG` (the specification's).
pub const DEFAULT_RATIO: f64 = 1.0;

/// Reads the settings; an error names the variable (exit 78 at start-up).
pub fn settings(source: &impl Source, service: &str) -> Result<Settings, ConfigError> {
    let get = |key: &str| source.get(key).filter(|v| !v.trim().is_empty());
    let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    for key in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(p) = get(key).filter(|p| p != "grpc") {
            return Err(ConfigError::new(key, format!("only grpc is supported, got {p:?}")));
        }
    }
    let ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
        None => DEFAULT_RATIO,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => return Err(ConfigError::new("OTEL_TRACES_SAMPLER_ARG", format!("expected a ratio 0..=1, got {v:?}"))),
        },
    };
    let name = get("OTEL_TRACES_SAMPLER").unwrap_or_else(|| "parentbased_traceidratio".to_owned());
    let sampler = match name.as_str() {
        "always_on" => SamplerChoice { parent_based: false, ratio: 1.0 },
        "always_off" => SamplerChoice { parent_based: false, ratio: 0.0 },
        "traceidratio" => SamplerChoice { parent_based: false, ratio },
        "parentbased_always_on" => SamplerChoice { parent_based: true, ratio: 1.0 },
        "parentbased_always_off" => SamplerChoice { parent_based: true, ratio: 0.0 },
        "parentbased_traceidratio" => SamplerChoice { parent_based: true, ratio },
        other => return Err(ConfigError::new("OTEL_TRACES_SAMPLER", format!("unsupported sampler {other:?}"))),
    };
    let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned());
    Ok(Settings { endpoint, sampler, service_name })
}

/// Span export counters, registered by each service in its metrics registry ([`register`]).
pub struct ExportMetrics {
    /// `otel_spans_dropped_total{reason}`: `queue_full` (the export queue was full) or
    /// `export_failed` (the collector refused or did not answer).
    pub dropped: IntCounterVec,
    /// `otel_spans_exported_total`: spans the collector accepted.
    pub exported: prometheus::IntCounter,
}

static METRICS: LazyLock<ExportMetrics> = LazyLock::new(|| ExportMetrics {
    dropped: IntCounterVec::new(
        Opts::new("otel_spans_dropped_total", "Trace spans not exported, by reason (queue_full, export_failed)"),
        &["reason"],
    )
    .expect("valid metric definition"),
    exported: prometheus::IntCounter::new("otel_spans_exported_total", "Trace spans the collector accepted")
        .expect("valid metric definition"),
});

/// The process' export counters.
pub fn metrics() -> &'static ExportMetrics {
    &METRICS
}

/// Adds the export counters to `registry`.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(METRICS.dropped.clone()))?;
    registry.register(Box::new(METRICS.exported.clone()))
}

/// A trace id (and sampling decision) a span must start with instead of the generator's and the
/// sampler's: set by [`continue_trace`] around the span's start, on the thread that starts it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The caller's trace id when it named no parent span (the ALB's `Root=` only).
    trace_id: Option<TraceId>,
    /// `Some`: the caller's decision; `None`: apply the ratio (the caller left it open).
    sampled: Option<bool>,
}

thread_local! {
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
}

/// X-Ray trace ids, or the pending caller's one.
#[derive(Debug, Default)]
struct TraceIds(XrayIdGenerator);

impl IdGenerator for TraceIds {
    fn new_trace_id(&self) -> TraceId {
        PENDING.with(Cell::get).and_then(|p| p.trace_id).unwrap_or_else(|| self.0.new_trace_id())
    }
    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The configured sampler, except for a span [`continue_trace`] starts for a caller that left the
/// decision open (the ALB's header without `Sampled=`): that one gets the root ratio.
#[derive(Debug, Clone)]
struct RequestSampler {
    configured: Sampler,
    root: Sampler,
}

impl RequestSampler {
    fn new(choice: SamplerChoice) -> Self {
        let root = root_sampler(choice.ratio);
        let configured = if choice.parent_based { Sampler::ParentBased(Box::new(root.clone())) } else { root.clone() };
        Self { configured, root }
    }
}

impl ShouldSample for RequestSampler {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        match PENDING.with(Cell::get).map(|p| p.sampled) {
            None => self.configured.should_sample(parent, trace_id, name, kind, attributes, links),
            Some(None) => self.root.should_sample(None, trace_id, name, kind, attributes, links),
            Some(Some(sampled)) => SamplingResult {
                decision: if sampled { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop },
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            },
        }
    }
}

/// The sampler of traces without a caller's decision: `ratio` of them (0 and 1 without hashing
/// the trace id).
fn root_sampler(ratio: f64) -> Sampler {
    match ratio {
        r if r >= 1.0 => Sampler::AlwaysOn,
        r if r <= 0.0 => Sampler::AlwaysOff,
        r => Sampler::TraceIdRatioBased(r),
    }
}

/// Flushes and stops the export at exit (drop it last in `main`, outside any async runtime).
pub struct TracingGuard {
    provider: SdkTracerProvider,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        // Ends with the exporter's thread: queued spans are exported first (bounded wait).
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// The tracer for `settings` and its guard. With an endpoint, spans go to a bounded queue that a
/// thread of its own exports (fails only when that thread cannot start); without one, no
/// processor: spans get ids and are dropped when they end.
pub fn tracer(settings: &Settings) -> std::io::Result<(SdkTracer, TracingGuard)> {
    let resource = Resource::builder().with_service_name(settings.service_name.clone()).build();
    let mut builder = SdkTracerProvider::builder().with_id_generator(TraceIds::default()).with_resource(resource);
    builder = match &settings.endpoint {
        Some(endpoint) => builder
            .with_sampler(RequestSampler::new(settings.sampler))
            .with_span_processor(export::QueueProcessor::start(endpoint.clone(), &METRICS)?),
        // Nothing to export: new traces are not recorded (their ids still go to the logs).
        None => builder.with_sampler(RequestSampler::new(SamplerChoice { ratio: 0.0, ..settings.sampler })),
    };
    let provider = builder.build();
    let tracer = provider.tracer("taskmgmt");
    Ok((tracer, TracingGuard { provider }))
}

/// Starts `span` (a request's server span, just created) in the caller's trace: as the child of
/// the caller's span, or, for a header with only a trace id, as a root span with that trace id;
/// the caller's sampling decision is kept, an open one gets the configured ratio. `None`: a new
/// trace. Call it before anything logs inside `span` (a started span's parent is fixed).
pub fn continue_trace(span: &tracing::Span, incoming: Option<Incoming>) {
    let Some(incoming) = incoming else {
        let _ = span.context();
        return;
    };
    if let Some(parent) = incoming.parent {
        let flags = if incoming.sampled == Some(true) { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let remote = SpanContext::new(incoming.trace_id, parent, flags, true, TraceState::default());
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
    let pending =
        Pending { trace_id: incoming.parent.is_none().then_some(incoming.trace_id), sampled: incoming.sampled };
    let needed = pending.trace_id.is_some() || pending.sampled.is_none();
    if needed {
        PENDING.with(|p| p.set(Some(pending)));
    }
    // Starts the OpenTelemetry span now, on this thread, while the pending ids apply.
    let _ = span.context();
    if needed {
        PENDING.with(|p| p.set(None));
    }
}

/// `span`'s ids and sampled flag, for the headers of a call it makes; `None` without tracing.
pub fn span_ids(span: &tracing::Span) -> Option<(TraceId, SpanId, bool)> {
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    sc.is_valid().then(|| (sc.trace_id(), sc.span_id(), sc.is_sampled()))
}

/// Inserts `traceparent` and `X-Amzn-Trace-Id` for a call made inside `span` into `headers`,
/// replacing any (and removing `tracestate`). Without tracing, removes all three.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    use crate::trace_header::{TRACEPARENT, TRACESTATE, X_AMZN_TRACE_ID, format_traceparent, format_xray};
    headers.remove(TRACESTATE);
    match span_ids(span) {
        Some((trace, id, sampled)) => {
            headers.insert(TRACEPARENT, format_traceparent(trace, id, sampled));
            headers.insert(X_AMZN_TRACE_ID, format_xray(trace, id, sampled));
        }
        None => {
            headers.remove(TRACEPARENT);
            headers.remove(X_AMZN_TRACE_ID);
        }
    }
}

#[cfg(test)]
mod tests;
