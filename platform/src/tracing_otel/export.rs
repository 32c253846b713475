//! The export queue: a `SpanProcessor` that hands ended spans to a bounded channel without
//! waiting, and a thread of its own (a current-thread tokio runtime, so tonic has a reactor)
//! that exports them in batches over OTLP/gRPC.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::mpsc;

use super::ExportMetrics;

/// Spans waiting for export at most; more are dropped (and counted). The SDK's default.
pub const QUEUE_CAPACITY: usize = 2048;
/// Spans per OTLP request at most (the SDK's default batch size).
const BATCH: usize = 512;
/// A partial batch is sent after this long.
const INTERVAL: Duration = Duration::from_secs(1);

enum Control {
    /// Export everything queued, then answer.
    Flush(std_mpsc::Sender<()>),
    /// Export everything queued, shut the exporter down, answer, stop.
    Shutdown(std_mpsc::Sender<()>),
    /// The provider's resource (`service.name`, ...): the exporter sends it with every batch.
    Resource(Box<Resource>),
}

pub(super) struct QueueProcessor {
    spans: mpsc::Sender<SpanData>,
    control: mpsc::UnboundedSender<Control>,
    metrics: &'static ExportMetrics,
}

impl std::fmt::Debug for QueueProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueProcessor").field("capacity", &QUEUE_CAPACITY).finish_non_exhaustive()
    }
}

impl QueueProcessor {
    /// Starts the export thread for the OTLP/gRPC `endpoint`.
    pub(super) fn start(endpoint: String, metrics: &'static ExportMetrics) -> std::io::Result<Self> {
        let (spans, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (control, control_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("otel-export".to_owned())
            .spawn(move || runtime.block_on(run(endpoint, rx, control_rx, metrics)))?;
        Ok(Self { spans, control, metrics })
    }

    fn ask(&self, make: fn(std_mpsc::Sender<()>) -> Control, timeout: Duration) -> OTelSdkResult {
        let (done, wait) = std_mpsc::channel();
        self.control.send(make(done)).map_err(|_| OTelSdkError::AlreadyShutdown)?;
        wait.recv_timeout(timeout).map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    /// Never waits: a full queue drops the span.
    fn on_end(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.metrics.dropped.with_label_values(&["queue_full"]).inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Control::Shutdown, timeout)
    }

    /// Called by the provider when it is built, before any span.
    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.control.send(Control::Resource(Box::new(resource.clone())));
    }
}

async fn run(
    endpoint: String,
    mut spans: mpsc::Receiver<SpanData>,
    mut control: mpsc::UnboundedReceiver<Control>,
    metrics: &'static ExportMetrics,
) {
    // Built here: tonic's lazy channel needs this runtime. The SDK reads the other
    // OTEL_EXPORTER_OTLP_* settings (timeout, headers, compression) itself.
    let mut exporter =
        match opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint.clone()).build() {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(%endpoint, error = %e, "cannot build the OTLP exporter; spans are dropped");
                None
            }
        };
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u64;
    loop {
        tokio::select! {
            biased;
            message = control.recv() => {
                if let Some(Control::Resource(resource)) = &message {
                    if let Some(e) = exporter.as_mut() {
                        e.set_resource(resource);
                    }
                    continue;
                }
                while let Ok(span) = spans.try_recv() {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        export(exporter.as_ref(), &mut batch, metrics, &mut failures).await;
                    }
                }
                export(exporter.as_ref(), &mut batch, metrics, &mut failures).await;
                match message {
                    Some(Control::Flush(done)) => { let _ = done.send(()); }
                    Some(Control::Shutdown(done)) => {
                        if let Some(e) = &exporter { let _ = e.shutdown(); }
                        let _ = done.send(());
                        return;
                    }
                    Some(Control::Resource(_)) | None => return,
                }
            }
            span = spans.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        export(exporter.as_ref(), &mut batch, metrics, &mut failures).await;
                    }
                }
                None => {
                    export(exporter.as_ref(), &mut batch, metrics, &mut failures).await;
                    return;
                }
            },
            _ = tick.tick() => export(exporter.as_ref(), &mut batch, metrics, &mut failures).await,
        }
    }
}

/// Sends `batch` (emptying it) and counts the outcome. Failures are logged once per 100.
async fn export(
    exporter: Option<&opentelemetry_otlp::SpanExporter>,
    batch: &mut Vec<SpanData>,
    metrics: &'static ExportMetrics,
    failures: &mut u64,
) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    let result = match exporter {
        Some(e) => e.export(std::mem::replace(batch, Vec::with_capacity(BATCH))).await,
        None => {
            batch.clear();
            Err(OTelSdkError::InternalFailure("no exporter".to_owned()))
        }
    };
    match result {
        Ok(()) => metrics.exported.inc_by(count),
        Err(e) => {
            metrics.dropped.with_label_values(&["export_failed"]).inc_by(count);
            if failures.is_multiple_of(100) {
                tracing::warn!(error = %e, spans = count, "span export failed");
            }
            *failures += 1;
        }
    }
}
