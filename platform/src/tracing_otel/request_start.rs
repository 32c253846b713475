//! A request's trace decided before any span exists: its trace id, the span id to name as the
//! parent of the calls it makes, and whether it is sampled, by the same rules as the tracer
//! ([`super::tracer`]). A proxy that records spans only for traces it exports ([`TraceStart::record`])
//! pays nothing for spans on the other requests, yet passes their ids on and logs their trace id.

use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample};

use super::{SamplerChoice, Settings};
use crate::trace_header::Incoming;

/// Decides how each request's trace starts; built from the process' [`Settings`].
#[derive(Debug, Clone)]
pub struct RequestSampling {
    /// An exporter is configured: sampled traces are recorded.
    exporting: bool,
    /// `parentbased_*`: a caller's decision is kept.
    parent_based: bool,
    /// The sampler of traces without a caller's decision (ratio 0 without an exporter, as the
    /// tracer's).
    root: Sampler,
}

/// How one request's trace starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceStart {
    /// The caller's trace id, or a new X-Ray one.
    pub trace_id: TraceId,
    /// The caller's span, `None` when it named none (a new trace, or the ALB's `Root=` only).
    pub parent: Option<SpanId>,
    /// The sampling decision passed on to the services.
    pub sampled: bool,
    /// Spans are recorded and exported: sampled, with an exporter.
    pub record: bool,
}

impl TraceStart {
    /// The trace to start the request's server span in when it is recorded: the caller's, or a
    /// root with this trace id and decision ([`super::continue_trace`]).
    pub fn incoming(&self) -> Incoming {
        Incoming { trace_id: self.trace_id, parent: self.parent, sampled: Some(self.sampled) }
    }
}

impl RequestSampling {
    /// The sampling of a process with `settings`.
    pub fn new(settings: &Settings) -> Self {
        let exporting = settings.endpoint.is_some();
        let ratio = if exporting { settings.sampler.ratio } else { 0.0 };
        Self::with(exporting, SamplerChoice { ratio, ..settings.sampler })
    }

    fn with(exporting: bool, choice: SamplerChoice) -> Self {
        Self { exporting, parent_based: choice.parent_based, root: super::root_sampler(choice.ratio) }
    }

    /// The start of a request's trace from the caller's valid header, if any. A caller's
    /// decision is kept under a `parentbased_*` sampler, and always for the ALB's `Root=`-only
    /// header (its trace has no parent span to follow otherwise); an open one gets the ratio,
    /// applied to the trace id (the same decision the tracer makes for the same id).
    pub fn start(&self, incoming: Option<Incoming>) -> TraceStart {
        let (trace_id, parent, caller) = match incoming {
            Some(i) => (i.trace_id, i.parent, i.sampled),
            None => (new_xray_trace_id(), None, None),
        };
        let sampled = match caller {
            Some(s) if self.parent_based || parent.is_none() => s,
            _ => {
                let result = self.root.should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]);
                result.decision == SamplingDecision::RecordAndSample
            }
        };
        TraceStart { trace_id, parent, sampled, record: sampled && self.exporting }
    }

    /// A new span id (for a call made by a request whose spans are not recorded).
    pub fn new_span_id() -> SpanId {
        RandomIdGenerator::default().new_span_id()
    }
}

/// A new trace id in X-Ray's form: the epoch seconds in the first 32 bits, 96 random bits
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-traceids>).
/// `opentelemetry-aws`' generator makes the same id through two `format!`s and a hex parse, about
/// 2,700 instructions; this is what every request without a trace header pays.
fn new_xray_trace_id() -> TraceId {
    let random = u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes());
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    TraceId::from((u128::from(secs as u32) << 96) | (random & ((1u128 << 96) - 1)))
}

static PROCESS: OnceLock<RequestSampling> = OnceLock::new();

/// Records the process' sampling (called once by the logging set-up).
pub(crate) fn install(settings: &Settings) {
    let _ = PROCESS.set(RequestSampling::new(settings));
}

/// The process' sampling, as its tracer was set up; without a set-up (a unit test), that of a
/// process without an exporter under the default sampler.
pub fn request_sampling() -> &'static RequestSampling {
    PROCESS.get_or_init(|| RequestSampling::with(false, SamplerChoice { parent_based: true, ratio: 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(parent: bool, sampled: Option<bool>) -> Incoming {
        Incoming {
            trace_id: TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap_or(TraceId::INVALID),
            parent: parent.then(|| SpanId::from_hex("53995c3f42cd8ad8").unwrap_or(SpanId::INVALID)),
            sampled,
        }
    }

    #[test]
    fn a_caller_decision_is_kept_under_parent_based_sampling_and_an_open_one_gets_the_ratio() {
        let never = RequestSampling::with(true, SamplerChoice { parent_based: true, ratio: 0.0 });
        let always = RequestSampling::with(true, SamplerChoice { parent_based: true, ratio: 1.0 });
        let s = never.start(Some(incoming(true, Some(true))));
        assert_eq!((s.sampled, s.record, s.parent.is_some()), (true, true, true));
        assert_eq!(s.trace_id, incoming(true, None).trace_id);
        assert!(!always.start(Some(incoming(true, Some(false)))).sampled);
        assert!(!never.start(Some(incoming(true, None))).sampled, "open: the ratio decides");
        assert!(always.start(Some(incoming(false, None))).sampled);
        // Not parent-based: the ratio decides, except for a Root-only header's explicit decision.
        let ratio_only = RequestSampling::with(true, SamplerChoice { parent_based: false, ratio: 0.0 });
        assert!(!ratio_only.start(Some(incoming(true, Some(true)))).sampled);
        assert!(ratio_only.start(Some(incoming(false, Some(true)))).sampled);
    }

    #[test]
    fn nothing_is_recorded_without_an_exporter_yet_a_caller_decision_is_passed_on() {
        let settings = Settings {
            endpoint: None,
            sampler: SamplerChoice { parent_based: true, ratio: 1.0 },
            service_name: "gateway".into(),
        };
        let none = RequestSampling::new(&settings);
        let s = none.start(None);
        assert!(!s.sampled && !s.record && s.parent.is_none());
        assert_ne!(s.trace_id, TraceId::INVALID);
        let s = none.start(Some(incoming(true, Some(true))));
        assert!(s.sampled && !s.record);
    }

    #[test]
    fn new_trace_ids_are_xray_shaped_and_differ() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
        let ids: Vec<TraceId> = (0..100).map(|_| new_xray_trace_id()).collect();
        for id in &ids {
            let secs = u32::from_be_bytes(id.to_bytes()[..4].try_into().unwrap());
            assert!(secs.abs_diff(now) <= 2, "{id}: {secs} vs {now}");
            assert_ne!(*id, TraceId::INVALID);
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn the_ratio_decides_on_the_trace_id_like_the_sdk_sampler() {
        let half = RequestSampling::with(true, SamplerChoice { parent_based: true, ratio: 0.5 });
        let starts: Vec<TraceStart> = (0..2000).map(|_| half.start(None)).collect();
        let sampled = starts.iter().filter(|s| s.sampled).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 2000 at 0.5");
        let sdk = Sampler::TraceIdRatioBased(0.5);
        for s in &starts {
            let d = sdk.should_sample(None, s.trace_id, "x", &SpanKind::Server, &[], &[]).decision;
            assert_eq!(s.sampled, d == SamplingDecision::RecordAndSample, "{:?}", s.trace_id);
            assert_eq!(s.record, s.sampled);
        }
    }
}
