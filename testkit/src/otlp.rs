//! An in-process OTLP/gRPC trace receiver (the collector's `TraceService`, from
//! `opentelemetry-proto`): the services export to [`Receiver::endpoint`] and a test reads what
//! arrived. No collector binary is needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// One span as received, ids in lower-case hex (`parent` empty for a root span).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    /// OTLP `SpanKind`: 2 server, 3 client.
    pub kind: i32,
    /// Attribute values as text (strings unquoted).
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Collect {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .map(text)
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|a| (a.key, a.value.as_ref().map(text).unwrap_or_default()))
                        .collect(),
                });
            }
        }
        self.0.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The receiver, serving until dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    spans: Collect,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let incoming = tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the OTLP receiver");
        let addr = incoming.local_addr().expect("receiver address");
        let spans = Collect::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(spans.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { addr, spans, _stop: stop }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the services.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.0.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id` (32 hex digits).
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }
}

/// `spans` as an indented tree (children under their parent, by start order as received):
/// `service: name [attributes]` per line, for assertions' messages and reports.
pub fn render_tree(spans: &[ReceivedSpan]) -> String {
    fn walk(spans: &[ReceivedSpan], parent: &str, depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent == parent) {
            let attrs: Vec<String> = s
                .attributes
                .iter()
                .filter(|(k, _)| k.contains('.') && !k.starts_with("otel.") && !k.starts_with("code."))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "{}{}: {} (span {}) [{}]\n",
                "  ".repeat(depth),
                s.service,
                s.name,
                s.span_id,
                attrs.join(", ")
            ));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    // Roots: spans whose parent is not among them (none, or a caller outside the trace's spans).
    let mut roots: Vec<&str> =
        spans.iter().filter(|s| !ids.contains(&s.parent.as_str())).map(|s| s.parent.as_str()).collect();
    roots.sort_unstable();
    roots.dedup();
    for root in roots {
        if !root.is_empty() {
            out.push_str(&format!("(remote parent {root})\n"));
        }
        walk(spans, root, usize::from(!root.is_empty()), &mut out);
    }
    out
}
