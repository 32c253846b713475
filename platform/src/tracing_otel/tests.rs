#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;

use super::*;
use crate::trace_header::Incoming;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn settings_follow_the_standard_variables() {
    let s = settings(&env(&[]), "task-svc").unwrap();
    assert_eq!(s.endpoint, None);
    assert_eq!(s.sampler, SamplerChoice { parent_based: true, ratio: DEFAULT_RATIO });
    assert_eq!(s.service_name, "task-svc");

    let ecs = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.05"),
        ("OTEL_SERVICE_NAME", "gateway-prod"),
    ]);
    let s = settings(&ecs, "gateway").unwrap();
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
    assert_eq!(s.sampler, SamplerChoice { parent_based: true, ratio: 0.05 });
    assert_eq!(s.service_name, "gateway-prod");

    let traces_first = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4317"),
    ]);
    assert_eq!(settings(&traces_first, "x").unwrap().endpoint.as_deref(), Some("http://b:4317"));
    assert_eq!(settings(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), "x").unwrap().endpoint, None);
    assert_eq!(settings(&env(&[("OTEL_TRACES_SAMPLER", "always_off")]), "x").unwrap().sampler.ratio, 0.0);
}

#[test]
fn bad_settings_name_their_variable() {
    for (key, value) in [
        ("OTEL_TRACES_SAMPLER", "xray"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ] {
        let e = settings(&env(&[(key, value)]), "x").unwrap_err();
        assert_eq!(e.key, key, "{value}");
    }
}

/// Runs `f` with a subscriber whose tracer samples per `choice` (no processor: nothing is
/// exported, the span contexts are what is checked).
fn with_tracing<T>(choice: SamplerChoice, f: impl FnOnce() -> T) -> T {
    let provider = SdkTracerProvider::builder()
        .with_id_generator(TraceIds::default())
        .with_sampler(RequestSampler::new(choice))
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f)
}

const TRACE: &str = "5759e988bd862e3fe1be46a994272793";

fn start(choice: SamplerChoice, incoming: Option<Incoming>) -> (TraceId, SpanId, bool) {
    with_tracing(choice, || {
        let span = tracing::info_span!("request");
        continue_trace(&span, incoming);
        span_ids(&span).unwrap()
    })
}

#[test]
fn a_root_only_header_keeps_its_trace_id_and_gets_the_ratio() {
    let trace = TraceId::from_hex(TRACE).unwrap();
    let root_only = Incoming { trace_id: trace, parent: None, sampled: None };
    let (got, _, sampled) = start(SamplerChoice { parent_based: true, ratio: 1.0 }, Some(root_only));
    assert_eq!((got, sampled), (trace, true));
    let (got, _, sampled) = start(SamplerChoice { parent_based: true, ratio: 0.0 }, Some(root_only));
    assert_eq!((got, sampled), (trace, false));
    // A caller's explicit decision beats the ratio.
    let decided = Incoming { sampled: Some(true), ..root_only };
    assert!(start(SamplerChoice { parent_based: true, ratio: 0.0 }, Some(decided)).2);
}

#[test]
fn a_caller_span_is_continued_with_its_decision() {
    let trace = TraceId::from_hex(TRACE).unwrap();
    let parent = SpanId::from_hex("53995c3f42cd8ad8").unwrap();
    let sampled = Incoming { trace_id: trace, parent: Some(parent), sampled: Some(true) };
    let (got, span, is_sampled) = start(SamplerChoice { parent_based: true, ratio: 0.0 }, Some(sampled));
    assert_eq!((got, is_sampled), (trace, true));
    assert_ne!(span, parent, "our span is a new one");
    let unsampled = Incoming { sampled: Some(false), ..sampled };
    assert!(!start(SamplerChoice { parent_based: true, ratio: 1.0 }, Some(unsampled)).2);
    let open = Incoming { sampled: None, ..sampled };
    assert!(start(SamplerChoice { parent_based: true, ratio: 1.0 }, Some(open)).2);
}

#[test]
fn new_traces_get_xray_shaped_ids_even_when_not_sampled() {
    let (trace, span, sampled) = start(SamplerChoice { parent_based: true, ratio: 0.0 }, None);
    assert!(!sampled);
    assert_ne!(span, SpanId::INVALID);
    let epoch = u32::from_str_radix(&trace.to_string()[..8], 16).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now as i64 - i64::from(epoch)).abs() < 60, "X-Ray ids start with the epoch seconds");
    // The pending ids were cleared: the next trace is a new one.
    assert_ne!(start(SamplerChoice { parent_based: true, ratio: 0.0 }, None).0, trace);
}

#[test]
fn outgoing_headers_replace_the_clients() {
    with_tracing(SamplerChoice { parent_based: true, ratio: 1.0 }, || {
        let span = tracing::info_span!("call");
        continue_trace(&span, None);
        let (trace, id, _) = span_ids(&span).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static("00-client"));
        headers.insert("tracestate", http::HeaderValue::from_static("k=v"));
        headers.append("x-amzn-trace-id", http::HeaderValue::from_static("Root=evil"));
        headers.append("x-amzn-trace-id", http::HeaderValue::from_static("Root=evil2"));
        inject(&span, &mut headers);
        assert_eq!(headers.get("traceparent").unwrap(), format!("00-{trace}-{id}-01").as_str());
        assert_eq!(headers.get_all("x-amzn-trace-id").iter().count(), 1);
        assert!(
            headers.get("x-amzn-trace-id").unwrap().to_str().unwrap().ends_with(&format!(";Parent={id};Sampled=1"))
        );
        assert!(headers.get("tracestate").is_none());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_and_the_guard_flushes_them() {
    let receiver = testkit::otlp::Receiver::start().await;
    let settings = Settings {
        endpoint: Some(receiver.endpoint()),
        sampler: SamplerChoice { parent_based: true, ratio: 1.0 },
        service_name: "unit".to_owned(),
    };
    let (tracer, guard) = tracer(&settings).unwrap();
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let trace = tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("unit work", otel.kind = "server");
        continue_trace(&span, None);
        let child = tracing::info_span!(parent: &span, "inner");
        drop(child);
        span_ids(&span).unwrap().0
    });
    // Exported on shutdown at the latest (a thread of its own: fine inside this runtime).
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();
    let spans = receiver.trace(&trace.to_string());
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 2, "{names:?} of {:?}", receiver.spans());
    assert!(spans.iter().all(|s| s.service == "unit"));
    assert_eq!(metrics().exported.get(), 2);
}
