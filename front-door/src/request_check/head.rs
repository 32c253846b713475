//! The checks on one request head (the ALB's limits and RFC 9112's framing rules), and the body
//! framing a head that passes announces.

use super::Rejection;

/// Longest request line, and longest header line (ALB: 16K each).
pub const MAX_LINE: usize = 16 * 1024;
/// Longest request head (ALB: 64K).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one request (hyper's own limit).
pub const MAX_HEADERS: usize = 100;

/// How the body after a head that passed is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length` bytes (0 without the header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Not HTTP after the head (CONNECT): passed through unchecked.
    Opaque,
}

/// An incomplete head that is already too long to be accepted: its request line (the first)
/// over [`MAX_LINE`] is a long target, any other line over it or the whole over [`MAX_HEAD`] are
/// header fields too large.
pub(super) fn partial_too_long(input: &[u8]) -> Option<Rejection> {
    let mut lines = input.split(|b| *b == b'\n');
    if lines.next().is_some_and(|request_line| request_line.len() > MAX_LINE) {
        return Some(Rejection::uri_too_long());
    }
    if input.len() > MAX_HEAD {
        return Some(head_too_large());
    }
    if lines.any(|line| line.len() > MAX_LINE) {
        return Some(Rejection::headers_too_large("A header line is longer than 16 KiB"));
    }
    None
}

/// A complete head over [`MAX_HEAD`].
pub(super) fn head_too_large() -> Rejection {
    Rejection::headers_too_large("The request head is larger than 64 KiB")
}

/// The rejection for a head `httparse` refused. The message says which part is wrong in our
/// words (never the parser's text or the request's bytes).
pub(super) fn parse_error(e: httparse::Error) -> Rejection {
    let message = match e {
        httparse::Error::TooManyHeaders => return Rejection::too_many_headers(),
        httparse::Error::Version => "The request line's version is not HTTP/1.0 or HTTP/1.1",
        httparse::Error::Token => {
            "The request line is not valid: it is a method, a request target and HTTP/1.1, separated by single spaces (RFC 9112 section 3)"
        }
        httparse::Error::HeaderName => "A header field name is not a valid token (RFC 9110 section 5.1)",
        httparse::Error::HeaderValue => {
            "A header field value has a character that is not allowed (RFC 9110 section 5.5)"
        }
        httparse::Error::NewLine => "A line of the request head does not end with CRLF (RFC 9112 section 2.2)",
        httparse::Error::Status => "The request head is not valid HTTP/1.1 (RFC 9112)",
    };
    Rejection::malformed(message)
}

/// The largest `Content-Length` the HTTP server behind this check (hyper) reads: it keeps the
/// two largest u64 values for its own markers and answers them with an empty 431 of its own.
const MAX_CONTENT_LENGTH: u64 = u64::MAX - 2;

/// Whether `target` is a request target the HTTP server behind this check accepts for a method
/// other than CONNECT (RFC 9112 section 3.2): origin-form (`/tasks?x=1`), absolute-form
/// (`http://host/tasks`) or asterisk-form (`*`). httparse takes any token here (`tasks`, `?x`),
/// which the server would refuse with an empty 400; refusing it here gives the JSON one.
fn is_request_target(target: &str) -> bool {
    match axum::http::Uri::try_from(target) {
        Ok(uri) if target.starts_with('/') => uri.scheme().is_none(),
        Ok(uri) => target == "*" || (uri.scheme().is_some() && uri.authority().is_some()),
        Err(_) => false,
    }
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section
/// 3.2.2): an authority without userinfo (`user@host`, which the gateway behind would refuse
/// with its own 400) whose port, if any, is a number up to 65535 or empty (RFC 3986's
/// `port = *DIGIT`), or empty (allowed for a target without an authority).
fn is_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    let Ok(authority) = axum::http::uri::Authority::try_from(value) else { return false };
    let text = authority.as_str();
    // A colon after any IPv6 literal's `]` starts a port; the `http` crate does not check it.
    let port = text.rfind(':').filter(|colon| Some(*colon) > text.rfind(']')).map(|colon| &text[colon + 1..]);
    !value.contains(&b'@') && port.is_none_or(|port| port.is_empty() || port.parse::<u16>().is_ok())
}

/// The checks on a complete head; the body framing that follows it.
pub(super) fn check(req: &httparse::Request<'_, '_>) -> Result<Framing, Rejection> {
    let http11 = req.version == Some(1);
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    if method.len() + path.len() + 10 > MAX_LINE {
        return Err(Rejection::uri_too_long());
    }
    if let Some(h) = req.headers.iter().find(|h| h.name.len() + h.value.len() + 2 > MAX_LINE) {
        // RFC 6585 section 5: the answer should name the field at fault (unless the name itself
        // is what is long).
        let message = if h.name.len() <= 64 {
            format!("The {} header line is longer than 16 KiB", h.name)
        } else {
            "A header line is longer than 16 KiB".to_owned()
        };
        return Err(Rejection::headers_too_large(message));
    }
    if !method.eq_ignore_ascii_case("CONNECT") && !is_request_target(path) {
        return Err(Rejection::malformed("The request target must be a path such as /tasks (RFC 9112 section 3.2)"));
    }
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value).collect()
    };
    let hosts = values("host");
    if hosts.len() > 1 || (http11 && hosts.is_empty()) {
        return Err(Rejection::malformed("An HTTP/1.1 request needs exactly one Host header (RFC 9112 section 3.2)"));
    }
    if hosts.first().is_some_and(|host| !is_host(host)) {
        return Err(Rejection::malformed(
            "The Host header must be a host and an optional port number, with no user name (RFC 9112 section 3.2)",
        ));
    }
    let lengths = values("content-length");
    let codings = values("transfer-encoding");
    if lengths.len() > 1 {
        return Err(Rejection::malformed("The request has more than one Content-Length header"));
    }
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(Rejection::malformed(
                "The request has both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)",
            ));
        }
        if !http11 {
            return Err(Rejection::malformed("Transfer-Encoding is not allowed in an HTTP/1.0 request"));
        }
        let chunked = codings.len() == 1 && codings[0].trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !chunked {
            return Err(Rejection::unsupported_transfer_encoding());
        }
        return Ok(Framing::Chunked);
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        return Ok(Framing::Opaque);
    }
    match lengths.first() {
        None => Ok(Framing::Length(0)),
        Some(value) => {
            let digits = value.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Rejection::malformed("Content-Length is not a number"));
            }
            std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .filter(|n| *n <= MAX_CONTENT_LENGTH)
                .map(Framing::Length)
                .ok_or_else(|| Rejection::malformed("Content-Length is too large"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_request_target;

    #[test]
    fn request_targets_are_the_forms_rfc_9112_allows() {
        for ok in ["/", "//", "/tasks", "/tasks/1?limit=2", "*", "http://a/tasks", "https://a:8080/"] {
            assert!(is_request_target(ok), "{ok:?}");
        }
        for bad in ["auth/health", "?x", "tasks", "", "a:b", "/ta sks", "http://"] {
            assert!(!is_request_target(bad), "{bad:?}");
        }
    }
}
