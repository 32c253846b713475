//! The gateway's limits on a request (`[server] max_header_count`, `max_header_bytes`,
//! `max_uri_bytes`, `max_body_bytes`), and the refusal for a request pingora could not parse.
//!
//! task-svc (hyper under axum) has limits of its own: at most 100 header fields, a head of about
//! 400 KiB, a request target of at most 65 534 bytes (the `http` crate's `Uri`), a body of
//! [`platform::http::BODY_LIMIT_BYTES`]. hyper answers the first three itself with an
//! empty-bodied 431 or 414. The gateway's limits are tighter, so a client meets them first and
//! gets the contract's JSON body with the RFC 9110 status: 431 (RFC 6585 section 5) for too many
//! or too large header fields, 414 (RFC 9110 section 15.5.15) for a long target, 413 (RFC 9110
//! section 15.5.14) for a large body. The gateway adds up to a handful of header fields of its
//! own (identity, `X-Request-Id`, trace context), which is why the count limit stays well below
//! hyper's 100.

use http::StatusCode;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType};
use platform::config::ConfigError;
use platform::error_body::reason;

use crate::config::file::ServerSection;
use crate::config::values::in_range;

/// The longest request target the `http` crate's `Uri` holds.
const MAX_URI_LEN: usize = 65_534;
/// Default `[server] max_header_count`.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 64;
/// Most header fields the config accepts: task-svc's 100 less room for the gateway's own.
pub const MAX_HEADER_COUNT_LIMIT: usize = 90;
/// Default `[server] max_header_bytes` (32 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default `[server] max_uri_bytes` (8 KiB, as nginx's `large_client_header_buffers`).
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Default `[server] max_body_bytes`: task-svc's own body limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = platform::http::BODY_LIMIT_BYTES as u64;

/// The validated limits (see the module docs for why each stays below task-svc's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
}

impl TryFrom<&ServerSection> for RequestLimits {
    type Error = ConfigError;

    fn try_from(s: &ServerSection) -> Result<Self, ConfigError> {
        let count = |key, v: usize, max: usize| in_range(key, v as u64, 1..=max as u64).map(|v| v as usize);
        Ok(Self {
            max_header_count: count("[server] max_header_count", s.max_header_count, MAX_HEADER_COUNT_LIMIT)?,
            // hyper's head buffer is about 400 KiB; 256 KiB leaves room for the gateway's fields.
            max_header_bytes: count("[server] max_header_bytes", s.max_header_bytes, 256 * 1024)?,
            max_uri_bytes: count("[server] max_uri_bytes", s.max_uri_bytes, MAX_URI_LEN)?,
            max_body_bytes: in_range("[server] max_body_bytes", s.max_body_bytes, 0..=DEFAULT_MAX_BODY_BYTES)?,
        })
    }
}

/// A request the gateway answers itself: status, the body's `message` and `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
    pub reason: &'static str,
}

impl Refusal {
    const TOO_MANY_HEADERS: Self = Self {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        message: "The request has too many header fields",
        reason: reason::TOO_MANY_HEADERS,
    };
    const HEADERS_TOO_LARGE: Self = Self {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        message: "The request's header fields are too large",
        reason: reason::HEADERS_TOO_LARGE,
    };
    const URI_TOO_LONG: Self = Self {
        status: StatusCode::URI_TOO_LONG,
        message: "The request target is too long",
        reason: reason::URI_TOO_LONG,
    };
    /// A body over `max_body_bytes` (announced, or counted as it arrives).
    pub const BODY_TOO_LARGE: Self = Self {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: "The request body is too large",
        reason: reason::BODY_TOO_LARGE,
    };
    /// A request that is not valid HTTP/1.1, head or body framing.
    pub const MALFORMED: Self = Self {
        status: StatusCode::BAD_REQUEST,
        message: "The request is not valid HTTP/1.1 (RFC 9112)",
        reason: reason::MALFORMED_REQUEST,
    };
    /// A body whose client closed its side before the body's end: fewer bytes than its
    /// `Content-Length`, or no last chunk (an incomplete message, RFC 9112 section 8).
    pub const INCOMPLETE_BODY: Self = Self {
        status: StatusCode::BAD_REQUEST,
        message: "The request body ended before its Content-Length or its last chunk (RFC 9112 section 8)",
        reason: reason::MALFORMED_REQUEST,
    };
    /// CONNECT, which the gateway does not tunnel (pingora refuses it before any phase).
    pub const CONNECT: Self = Self {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "CONNECT is not supported",
        reason: reason::METHOD_NOT_ALLOWED,
    };
}

impl RequestLimits {
    /// The refusal for a parsed head over a header or target limit; `None` when it is within
    /// them. The header section's size counts each field's name and value plus 4 bytes (`: ` and
    /// CRLF). Allocates nothing.
    pub fn check_head(&self, req: &RequestHeader) -> Option<Refusal> {
        let target = req.raw_path().len();
        if target > self.max_uri_bytes {
            return Some(Refusal::URI_TOO_LONG);
        }
        if req.headers.len() > self.max_header_count {
            return Some(Refusal::TOO_MANY_HEADERS);
        }
        let bytes: usize = req.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        if bytes > self.max_header_bytes {
            return Some(Refusal::HEADERS_TOO_LARGE);
        }
        None
    }

    /// [`Refusal::BODY_TOO_LARGE`] when the head announces a `Content-Length` over
    /// `max_body_bytes`. (A chunked body is counted as it arrives.)
    pub fn check_body_length(&self, req: &RequestHeader) -> Option<Refusal> {
        let length = req.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        if length.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > self.max_body_bytes) {
            return Some(Refusal::BODY_TOO_LARGE);
        }
        None
    }
}

/// [`Refusal::MALFORMED`] for a head pingora parsed but RFC 9112 forbids, so the gateway never
/// forwards what task-svc (or any server behind it) could read differently: an HTTP/1.1
/// request without `Host` (§3.2: "MUST respond with a 400"), and one with both
/// `Content-Length` and `Transfer-Encoding` (§6.1: the request-smuggling shape, "ought to be
/// handled as an error"). The ALB and the front door refuse both too.
/// And `chunked` applied more than once, on one `Transfer-Encoding` line or over several
/// (§6.1: "A sender MUST NOT apply the chunked transfer coding more than once"). And a request
/// target in a form its method may not use (§3.2): anything but origin-form
/// (`/path?query`), absolute-form (`http://host/path`; pingora refuses one whose host is not
/// `Host`) and, for `OPTIONS` only, asterisk-form (`*`). (A target with whitespace never gets
/// here: the vendored pingora refuses it while parsing.)
pub fn check_framing(req: &RequestHeader) -> Option<Refusal> {
    let no_host = req.version == http::Version::HTTP_11 && !req.headers.contains_key(http::header::HOST);
    let both_lengths = req.headers.contains_key(http::header::CONTENT_LENGTH)
        && req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let chunked_twice = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .nth(1)
        .is_some();
    (no_host || both_lengths || chunked_twice || !target_form_allowed(&req.method, req.raw_path()))
        .then_some(Refusal::MALFORMED)
}

/// RFC 9112 section 3.2's request-target forms a non-CONNECT request may use (CONNECT never
/// reaches a phase: pingora refuses it).
fn target_form_allowed(method: &http::Method, target: &[u8]) -> bool {
    let scheme = |s: &[u8]| target.len() > s.len() && target[..s.len()].eq_ignore_ascii_case(s);
    match target {
        [b'/', ..] => true,
        b"*" => method == http::Method::OPTIONS,
        _ => scheme(b"http://") || scheme(b"https://"),
    }
}

/// The refusal for a request head pingora failed to read: 431 when httparse ran out of header
/// slots (pingora's own limit, 256) or the head outgrew pingora's buffer, 414 when the target is
/// longer than the `http` crate's `Uri` holds (65 534 bytes), else 400.
pub fn for_parse_error(e: &Error) -> Refusal {
    let cause = e.root_cause();
    if matches!(cause.downcast_ref::<httparse::Error>(), Some(httparse::Error::TooManyHeaders)) {
        return Refusal::TOO_MANY_HEADERS;
    }
    // pingora-http drops the `http` crate's error and keeps "invalid uri <target>": a target
    // longer than a `Uri` holds (65 534 bytes) is the only invalid one of that length.
    let context = e.context.as_ref().map_or("", |c| c.as_str());
    if context.strip_prefix("invalid uri ").is_some_and(|target| target.len() > MAX_URI_LEN) {
        return Refusal::URI_TOO_LONG;
    }
    let too_large = context.starts_with("Request header larger than");
    if matches!(e.etype(), ErrorType::InvalidHTTPHeader) && too_large {
        return Refusal::HEADERS_TOO_LARGE;
    }
    Refusal::MALFORMED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::try_from(&ServerSection::default()).unwrap()
    }

    fn request(path: &str, headers: usize, value: usize) -> RequestHeader {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for i in 0..headers {
            req.append_header(format!("x-h{i}"), "v".repeat(value)).unwrap();
        }
        req
    }

    #[test]
    fn each_limit_is_checked_at_its_edge() {
        let l = limits();
        assert_eq!(l.check_head(&request("/tasks", 64, 1)), None);
        assert_eq!(l.check_head(&request("/tasks", 65, 1)), Some(Refusal::TOO_MANY_HEADERS));
        assert_eq!(l.check_head(&request(&format!("/{}", "a".repeat(8191)), 0, 0)), None);
        assert_eq!(l.check_head(&request(&format!("/{}", "a".repeat(8192)), 0, 0)), Some(Refusal::URI_TOO_LONG));
        assert_eq!(l.check_head(&request("/tasks", 2, 16 * 1024)), Some(Refusal::HEADERS_TOO_LARGE));
        let mut post = request("/tasks", 0, 0);
        post.insert_header("content-length", "65536").unwrap();
        assert_eq!(l.check_body_length(&post), None);
        post.insert_header("content-length", "65537").unwrap();
        assert_eq!(l.check_body_length(&post), Some(Refusal::BODY_TOO_LARGE));
    }

    #[test]
    fn a_target_is_allowed_only_in_a_form_its_method_may_use() {
        let (get, options) = (http::Method::GET, http::Method::OPTIONS);
        for (method, target, allowed) in [
            (&get, &b"/tasks/1?x=1"[..], true),
            (&get, b"/", true),
            (&get, b"http://a/tasks", true),
            (&get, b"HTTPS://a/tasks", true),
            (&options, b"*", true),
            (&get, b"*", false),
            (&get, b"tasks/1", false),
            (&get, b"a:80", false),
            (&get, b"http://", false),
            (&get, b"ftp://a/tasks", false),
        ] {
            assert_eq!(target_form_allowed(method, target), allowed, "{method} {}", target.escape_ascii());
        }
    }

    /// What the gateway forwards is the parsed head's `raw_path`: a fragment, no part of a
    /// request target (RFC 9112 section 3.2), is cut there, before the target's bytes are
    /// checked, so task-svc never sees it.
    #[test]
    fn a_fragment_is_cut_from_the_target_that_is_forwarded() {
        for (target, forwarded) in
            [(&b"/tasks/a#/../admin"[..], &b"/tasks/a"[..]), (b"/tasks/a?q=1#<x>", b"/tasks/a?q=1")]
        {
            let req = RequestHeader::build("GET", target, None).unwrap();
            assert_eq!(req.raw_path(), forwarded, "{}", target.escape_ascii());
        }
    }

    #[test]
    fn http_1_1_without_host_and_both_length_headers_are_malformed() {
        let mut req = request("/tasks", 0, 0);
        req.set_version(http::Version::HTTP_11);
        assert_eq!(check_framing(&req), Some(Refusal::MALFORMED), "HTTP/1.1 without Host");
        req.insert_header("host", "gateway").unwrap();
        assert_eq!(check_framing(&req), None);
        req.insert_header("content-length", "5").unwrap();
        assert_eq!(check_framing(&req), None);
        req.insert_header("transfer-encoding", "chunked").unwrap();
        assert_eq!(check_framing(&req), Some(Refusal::MALFORMED), "Content-Length and Transfer-Encoding");
        let mut old = request("/tasks", 0, 0);
        old.set_version(http::Version::HTTP_10);
        assert_eq!(check_framing(&old), None, "HTTP/1.0 needs no Host");
    }

    #[test]
    fn limits_above_task_svcs_are_refused_at_start_up() {
        let mut s = ServerSection { max_header_count: 91, ..ServerSection::default() };
        assert_eq!(RequestLimits::try_from(&s).unwrap_err().key, "[server] max_header_count");
        s.max_header_count = 10;
        s.max_body_bytes = DEFAULT_MAX_BODY_BYTES + 1;
        assert_eq!(RequestLimits::try_from(&s).unwrap_err().key, "[server] max_body_bytes");
    }

    #[test]
    fn parse_errors_map_to_431_414_or_400() {
        let many = Error::because(ErrorType::InvalidHTTPHeader, "buf", httparse::Error::TooManyHeaders);
        assert_eq!(for_parse_error(&many), Refusal::TOO_MANY_HEADERS);
        let large = Error::explain(ErrorType::InvalidHTTPHeader, "Request header larger than 1048575");
        assert_eq!(for_parse_error(&large), Refusal::HEADERS_TOO_LARGE);
        // What pingora-http returns for a target a `Uri` cannot hold (the `http` error dropped).
        let long = Error::explain(ErrorType::InvalidHTTPHeader, format!("invalid uri /{}", "a".repeat(70_000)));
        assert_eq!(for_parse_error(&long), Refusal::URI_TOO_LONG);
        let bad_uri = Error::explain(ErrorType::InvalidHTTPHeader, "invalid uri /a b");
        assert_eq!(for_parse_error(&bad_uri), Refusal::MALFORMED);
        let bad = Error::because(ErrorType::InvalidHTTPHeader, "buf", httparse::Error::Token);
        assert_eq!(for_parse_error(&bad), Refusal::MALFORMED);
        assert_eq!(for_parse_error(&Error::explain(ErrorType::InvalidHTTPHeader, "dup host")), Refusal::MALFORMED);
    }
}
