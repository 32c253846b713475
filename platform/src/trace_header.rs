//! Strict parsing of the two trace headers a request can arrive with, and formatting of the ones
//! sent on: W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/#traceparent-header>)
//! and AWS X-Ray's `X-Amzn-Trace-Id`
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>).
//!
//! A header is either valid in every byte or ignored (a new trace starts): bounded length, exact
//! field shapes, lower-case hex, no all-zero ids, one value only. Nothing of what a client sent is
//! ever echoed: outgoing headers are formatted from the parsed ids.
//!
//! `opentelemetry-aws`' `XrayPropagator` is not used for parsing: it accepts any hex length and
//! version, drops an invalid `Parent` silently, refuses a header with only `Root` (what the ALB
//! adds) and copies unknown fields into the trace state, which the W3C propagator then forwards.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

/// `traceparent` (lower case, as `http` stores names).
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`: never forwarded from a client (we keep no vendor state).
pub const TRACESTATE: &str = "tracestate";
/// The ALB's (and X-Ray's) trace header.
pub const X_AMZN_TRACE_ID: &str = "x-amzn-trace-id";

/// The longest `X-Amzn-Trace-Id` accepted. The ALB's own value (`Self=`, `Root=`, `Parent=`,
/// `Sampled=`) is about 120 bytes; 256 leaves room for `Lineage` and a few custom fields.
pub const MAX_XRAY_HEADER_BYTES: usize = 256;

/// A trace to continue, from a valid incoming header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: TraceId,
    /// The caller's span; `None` for an X-Ray header with only `Root` (the ALB's).
    pub parent: Option<SpanId>,
    /// The caller's sampling decision; `None` when it left it to us (`Sampled=?` or absent).
    pub sampled: Option<bool>,
}

/// Which header a continued trace came from (a span attribute: `trace.parent.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    TraceParent,
    XRay,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::TraceParent => "traceparent",
            Source::XRay => "x-amzn-trace-id",
        }
    }
}

/// The trace to continue from `headers`, if any. An X-Ray header that names its caller's span
/// (`Parent=`) wins; else a valid `traceparent`; else an X-Ray header with only `Root` (the ALB's
/// on a request that came without one): a client tracing with OpenTelemetry keeps its trace
/// behind the ALB, and a request without one keeps the ALB's trace id. Repeated or invalid
/// headers count as absent.
pub fn incoming(headers: &HeaderMap) -> Option<(Incoming, Source)> {
    // Looked up by `HeaderName`: a `&str` name is parsed again on every lookup.
    const X_AMZN_TRACE_ID_NAME: HeaderName = HeaderName::from_static(X_AMZN_TRACE_ID);
    const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
    let xray = single(headers, &X_AMZN_TRACE_ID_NAME).and_then(|v| parse_xray(v.as_bytes()));
    if let Some(x) = xray.filter(|x| x.parent.is_some()) {
        return Some((x, Source::XRay));
    }
    if let Some(w3c) = single(headers, &TRACEPARENT_NAME).and_then(|v| parse_traceparent(v.as_bytes())) {
        return Some((w3c, Source::TraceParent));
    }
    xray.map(|x| (x, Source::XRay))
}

/// The one value of `name`; `None` when absent or repeated.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Parses a version-00 `traceparent`: exactly `00-<32 hex>-<16 hex>-<2 hex>` (55 bytes), lower
/// case, neither id all zeros (W3C Trace Context §3.2.2). Other versions are refused: we cannot
/// know their format, and a refusal only starts a new trace.
pub fn parse_traceparent(value: &[u8]) -> Option<Incoming> {
    if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_array::<16>(&value[3..35])?);
    let span_id = SpanId::from_bytes(hex_array::<8>(&value[36..52])?);
    let flags = hex_array::<1>(&value[53..55])?[0];
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(Incoming { trace_id, parent: Some(span_id), sampled: Some(flags & 1 == 1) })
}

/// Parses `X-Amzn-Trace-Id`: `;`-separated `Key=Value` fields, at most
/// [`MAX_XRAY_HEADER_BYTES`]. `Root=1-<8 hex>-<24 hex>` is required, `Parent=<16 hex>` and
/// `Sampled=0|1|?` are optional, each at most once; other fields (`Self`, `Lineage`, custom ones)
/// must be visible ASCII and are ignored (never forwarded).
pub fn parse_xray(value: &[u8]) -> Option<Incoming> {
    if value.is_empty() || value.len() > MAX_XRAY_HEADER_BYTES {
        return None;
    }
    let (mut root, mut parent, mut sampled) = (None, None, None);
    for field in value.split(|b| *b == b';') {
        let eq = field.iter().position(|b| *b == b'=')?;
        let (key, val) = (&field[..eq], &field[eq + 1..]);
        if key.is_empty() || val.is_empty() || !field.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        match key {
            b"Root" if root.is_none() => root = Some(parse_xray_root(val)?),
            b"Parent" if parent.is_none() && val.len() == 16 => {
                parent = Some(SpanId::from_bytes(hex_array::<8>(val)?)).filter(|id| *id != SpanId::INVALID);
                parent?;
            }
            b"Sampled" if sampled.is_none() => {
                sampled = Some(match val {
                    b"1" => Some(true),
                    b"0" => Some(false),
                    b"?" => None,
                    _ => return None,
                });
            }
            b"Root" | b"Parent" | b"Sampled" => return None,
            _ => {}
        }
    }
    Some(Incoming { trace_id: root?, parent, sampled: sampled.flatten() })
}

/// `1-<8 hex>-<24 hex>` → the 128-bit trace id (the 8 hex digits first).
fn parse_xray_root(val: &[u8]) -> Option<TraceId> {
    if val.len() != 35 || &val[..2] != b"1-" || val[10] != b'-' {
        return None;
    }
    let mut hex = [0u8; 32];
    hex[..8].copy_from_slice(&val[2..10]);
    hex[8..].copy_from_slice(&val[11..]);
    Some(TraceId::from_bytes(hex_array::<16>(&hex)?)).filter(|id| *id != TraceId::INVALID)
}

/// `N` bytes from `2N` lower-case hex digits.
fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N || !digits.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// `traceparent` for a span: `00-<trace id>-<span id>-<01 or 00>`. Written into a stack buffer
/// (no formatting machinery, one allocation: the header value's): the gateway sends one per
/// request.
pub fn format_traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut out[3..35], &trace_id.to_bytes());
    hex_into(&mut out[36..52], &span_id.to_bytes());
    out[54] = if sampled { b'1' } else { b'0' };
    header_value(&out)
}

/// `X-Amzn-Trace-Id` for a span: `Root=1-<8 hex>-<24 hex>;Parent=<span id>;Sampled=<0|1>`.
pub fn format_xray(trace_id: TraceId, span_id: SpanId, sampled: bool) -> HeaderValue {
    let mut out = *b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    let trace = trace_id.to_bytes();
    hex_into(&mut out[7..15], &trace[..4]);
    hex_into(&mut out[16..40], &trace[4..]);
    hex_into(&mut out[48..64], &span_id.to_bytes());
    out[73] = if sampled { b'1' } else { b'0' };
    header_value(&out)
}

/// A trace id as its 32 lower-case hex digits, held on the stack: what `Display` of a
/// [`TraceId`] prints, without the formatting machinery (the gateway's access line carries one
/// per request, and a `&str` field is the cheapest a log line records).
#[derive(Clone, Copy)]
pub struct TraceIdHex([u8; 32]);

impl TraceIdHex {
    /// The hex digits of `trace_id`.
    pub fn new(trace_id: TraceId) -> Self {
        let mut out = [b'0'; 32];
        hex_into(&mut out, &trace_id.to_bytes());
        Self(out)
    }

    /// The 32 digits.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII; the fallback cannot be reached.
        std::str::from_utf8(&self.0).unwrap_or("00000000000000000000000000000000")
    }
}

/// Lower-case hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    // The lengths are fixed by the callers' templates; a mismatch leaves the zeros.
    let _ = hex::encode_to_slice(bytes, out);
}

/// A header value of ASCII hex and punctuation, which is always valid.
fn header_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap_or(HeaderValue::from_static(""))
}

/// X-Ray's form of a trace id: `4bf92f3577b34da6a3ce929d0e0e4736` → `1-4bf92f35-77b34da6a3ce929d0e0e4736`.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = trace_id.to_string();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn trace_id_hex_is_what_display_prints() {
        for id in [
            TraceId::INVALID,
            TraceId::from(1),
            TraceId::from(u128::MAX),
            TraceId::from(0x0af7_6519_16cd_43dd_u128 << 64),
        ] {
            assert_eq!(TraceIdHex::new(id).as_str(), id.to_string());
        }
    }

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const TRACE: &str = "5759e988bd862e3fe1be46a994272793";

    fn trace() -> TraceId {
        TraceId::from_hex(TRACE).unwrap()
    }

    #[test]
    fn traceparent_round_trips_and_keeps_the_sampled_flag() {
        let tp = format!("00-{TRACE}-53995c3f42cd8ad8-01");
        let got = parse_traceparent(tp.as_bytes()).unwrap();
        assert_eq!(got.trace_id, trace());
        assert_eq!(got.parent, Some(SpanId::from_hex("53995c3f42cd8ad8").unwrap()));
        assert_eq!(got.sampled, Some(true));
        assert_eq!(format_traceparent(got.trace_id, got.parent.unwrap(), true), tp.as_str());
        let unsampled = parse_traceparent(format!("00-{TRACE}-53995c3f42cd8ad8-00").as_bytes()).unwrap();
        assert_eq!(unsampled.sampled, Some(false));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        let zero_trace = format!("00-{}-53995c3f42cd8ad8-01", "0".repeat(32));
        let zero_span = format!("00-{TRACE}-0000000000000000-01");
        let upper = format!("00-{}-53995c3f42cd8ad8-01", TRACE.to_uppercase());
        let v1 = format!("01-{TRACE}-53995c3f42cd8ad8-01");
        let vff = format!("ff-{TRACE}-53995c3f42cd8ad8-01");
        let long = format!("00-{TRACE}-53995c3f42cd8ad8-01-extra");
        let short = format!("00-{}-53995c3f42cd8ad8-01", &TRACE[1..]);
        let bad_flags = format!("00-{TRACE}-53995c3f42cd8ad8-0g");
        let plus = format!("00-+{}-53995c3f42cd8ad8-01", &TRACE[1..]);
        for bad in [zero_trace, zero_span, upper, v1, vff, long, short, bad_flags, plus, String::new()] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn the_albs_root_only_header_leaves_parent_and_sampling_open() {
        let got = parse_xray(format!("Root={ROOT}").as_bytes()).unwrap();
        assert_eq!(got, Incoming { trace_id: trace(), parent: None, sampled: None });
        let deferred = parse_xray(format!("Root={ROOT};Sampled=?").as_bytes()).unwrap();
        assert_eq!(deferred.sampled, None);
    }

    #[test]
    fn a_full_xray_header_with_other_fields_in_any_order_parses() {
        let h = format!(
            "Self=1-67891234-12456789abcdef012345678;Sampled=1;Root={ROOT};Parent=53995c3f42cd8ad8;Lineage=a:1"
        );
        let got = parse_xray(h.as_bytes()).unwrap();
        assert_eq!(got.trace_id, trace());
        assert_eq!(got.parent, Some(SpanId::from_hex("53995c3f42cd8ad8").unwrap()));
        assert_eq!(got.sampled, Some(true));
        assert_eq!(parse_xray(format!("Root={ROOT};Sampled=0").as_bytes()).unwrap().sampled, Some(false));
    }

    #[test]
    fn malformed_xray_headers_are_refused() {
        let cases = [
            "Root=1-5759e988-bd862e3fe1be46a99427279".to_owned(),  // short
            "Root=2-5759e988-bd862e3fe1be46a994272793".to_owned(), // version
            "Root=1-5759E988-bd862e3fe1be46a994272793".to_owned(), // upper case
            "Root=1-00000000-000000000000000000000000".to_owned(), // all zeros
            format!("Root={ROOT};Root={ROOT}"),                    // repeated
            format!("Root={ROOT};Parent=53995c3f42cd8ad"),         // short parent
            format!("Root={ROOT};Parent=0000000000000000"),        // zero parent
            format!("Root={ROOT};Sampled=yes"),                    // bad decision
            format!("Root={ROOT};Self=a b"),                       // space
            format!("Root={ROOT};;"),                              // empty field
            format!("Root={ROOT};Junk"),                           // no '='
            format!("Root= {ROOT}"),                               // space in value
            "Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),        // no Root
            format!("Root={ROOT};Custom={}", "x".repeat(MAX_XRAY_HEADER_BYTES)), // too long
            String::new(),
        ];
        for bad in cases {
            assert_eq!(parse_xray(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn xray_header_with_a_parent_wins_then_traceparent_then_root_only() {
        let other = "0af7651916cd43dd8448eb211c80319c";
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_str(&format!("00-{other}-b7ad6b7169203331-01")).unwrap());
        h.insert(X_AMZN_TRACE_ID, HeaderValue::from_str(&format!("Root={ROOT}")).unwrap());
        let (got, source) = incoming(&h).unwrap();
        assert_eq!((got.trace_id.to_string().as_str(), source), (other, Source::TraceParent));

        h.insert(X_AMZN_TRACE_ID, HeaderValue::from_str(&format!("Root={ROOT};Parent=53995c3f42cd8ad8")).unwrap());
        assert_eq!(incoming(&h).unwrap().0.trace_id, trace());

        h.insert(X_AMZN_TRACE_ID, HeaderValue::from_str(&format!("Root={ROOT}")).unwrap());
        h.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        assert_eq!(incoming(&h).unwrap(), (Incoming { trace_id: trace(), parent: None, sampled: None }, Source::XRay));

        h.append(X_AMZN_TRACE_ID, HeaderValue::from_str(&format!("Root={ROOT}")).unwrap());
        assert_eq!(incoming(&h), None, "two X-Ray headers and a bad traceparent: a new trace");
    }

    #[test]
    fn outgoing_headers_are_formatted_from_ids() {
        let span = SpanId::from_hex("53995c3f42cd8ad8").unwrap();
        assert_eq!(
            format_xray(trace(), span, false),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0").as_str()
        );
        assert_eq!(xray_trace_id(trace()), ROOT);
        // What we send parses back to the same ids.
        let sent = format_xray(trace(), span, true);
        assert_eq!(
            parse_xray(sent.as_bytes()).unwrap(),
            Incoming { trace_id: trace(), parent: Some(span), sampled: Some(true) }
        );
    }
}
