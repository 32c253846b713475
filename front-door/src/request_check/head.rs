//! The checks on one request head (the ALB's limits and RFC 9112's framing rules), and the body
//! framing a head that passes announces.

use axum::http::StatusCode;

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

/// An incomplete head that is already too long to be accepted.
pub(super) fn partial_too_long(input: &[u8]) -> Option<Rejection> {
    if input.len() > MAX_HEAD {
        return Some(Rejection::bad("The request head is larger than 64 KiB"));
    }
    if input.split(|b| *b == b'\n').any(|line| line.len() > MAX_LINE) {
        return Some(Rejection::bad("A request line or header line is longer than 16 KiB"));
    }
    None
}

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

/// The checks on a complete head; the body framing that follows it.
pub(super) fn check(req: &httparse::Request<'_, '_>) -> Result<Framing, Rejection> {
    let http11 = req.version == Some(1);
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    if method.len() + path.len() + 10 > MAX_LINE {
        return Err(Rejection::bad("The request line is longer than 16 KiB"));
    }
    if let Some(h) = req.headers.iter().find(|h| h.name.len() + h.value.len() + 2 > MAX_LINE) {
        return Err(Rejection::bad(format!("The {} header line is longer than 16 KiB", h.name)));
    }
    if !method.eq_ignore_ascii_case("CONNECT") && !is_request_target(path) {
        return Err(Rejection::bad("The request target must be a path such as /tasks (RFC 9112 section 3.2)"));
    }
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value).collect()
    };
    let hosts = values("host").len();
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(Rejection::bad("An HTTP/1.1 request needs exactly one Host header (RFC 9112 section 3.2)"));
    }
    let lengths = values("content-length");
    let codings = values("transfer-encoding");
    if lengths.len() > 1 {
        return Err(Rejection::bad("The request has more than one Content-Length header"));
    }
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(Rejection::bad(
                "The request has both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)",
            ));
        }
        if !http11 {
            return Err(Rejection::bad("Transfer-Encoding is not allowed in an HTTP/1.0 request"));
        }
        let chunked = codings.len() == 1 && codings[0].trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !chunked {
            return Err(Rejection {
                status: StatusCode::NOT_IMPLEMENTED,
                message: "Transfer-Encoding is not supported: send chunked, or a Content-Length".into(),
            });
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
                return Err(Rejection::bad("Content-Length is not a number"));
            }
            std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .map(Framing::Length)
                .ok_or_else(|| Rejection::bad("Content-Length is too large"))
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
