//! The ALB's own checks of a request, before anything reaches a target: the public listener of
//! the front door reads every request head itself, as the ALB does in its "strictest" desync
//! mitigation mode (our CloudFormation sets `routing.http.desync_mitigation_mode: strictest`),
//! and rejects what the ALB rejects with the contract's JSON error instead of passing it on.
//! Each [`Rejection`] has the status the ALB answers ("Troubleshoot your Application Load
//! Balancers", "The load balancer generates an HTTP error") and the machine-readable `reason`
//! the gateway uses for the same case:
//!
//! - A head that does not parse as HTTP/1.x (request line, header line), an invalid header name,
//!   a request target that is not a path: 400 `malformed_request` (ALB: HTTP 400).
//! - Not exactly one `Host` in HTTP/1.1 (RFC 9112 3.2), more than one `Content-Length` or a
//!   non-numeric one, `Content-Length` together with `Transfer-Encoding`, `Transfer-Encoding`
//!   in HTTP/1.0 (RFC 9112 6.1-6.3; ambiguous framing that strictest mode blocks): 400
//!   `malformed_request`.
//! - A header line over 16 KiB or a head over 64 KiB: 400 `headers_too_large` (ALB: HTTP 400,
//!   "The request header exceeded 16K per request line, 16K per single header, or 64K for the
//!   entire header"; the gateway answers 431 for its own, tighter limit).
//! - A request line over 16 KiB: 414 `uri_too_long` (ALB: HTTP 414, "The request URL or query
//!   string parameters are too large").
//! - More than [`MAX_HEADERS`] header fields: 431 `too_many_headers` (RFC 6585 section 5; the
//!   ALB documents no count limit, this one is hyper's, which serves the front door).
//! - A `Transfer-Encoding` other than `chunked`: 501 `unsupported_transfer_encoding`, as the
//!   ALB answers (HTTP 501).
//!
//! hyper (which serves the front door) would answer most of these itself with an empty 400, or
//! pass them on. So [`Checked`] sits between the socket and hyper: it parses each head with
//! `httparse`, follows the body framing to find the next head, and for a bad head hands hyper a
//! stand-in request instead and closes; the handler answers that stand-in with the rejection
//! ([`ConnState::take_rejection`]), after any earlier responses on the connection. Bodies are
//! passed through as they arrive; broken chunked framing is left to hyper, whose body error the
//! front door turns into a 400 `malformed_request` (see [`crate::proxy`]).

mod checked;
mod head;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::serve::Listener;
use platform::error_body::reason;
use tokio::net::{TcpListener, TcpStream};

pub use checked::Checked;
pub use head::{MAX_HEAD, MAX_HEADERS, MAX_LINE};

/// Why a request was refused before reaching a target: the status, the body's `message` (what
/// was wrong, never the request's bytes) and its machine-readable `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
    /// `malformed_request`, `headers_too_large`, `too_many_headers`, `uri_too_long` or
    /// `unsupported_transfer_encoding`: the gateway's names where it refuses the same case.
    pub reason: &'static str,
}

impl Rejection {
    /// A 400 `malformed_request`: the head is not valid HTTP/1.1 (RFC 9112), or its framing is
    /// ambiguous.
    pub(super) fn malformed(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), reason: reason::MALFORMED_REQUEST }
    }

    /// A 400 `headers_too_large`: a header line over [`MAX_LINE`] or a head over [`MAX_HEAD`]
    /// (the ALB's 400 for its header limits).
    pub(super) fn headers_too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), reason: reason::HEADERS_TOO_LARGE }
    }

    /// A 414 `uri_too_long`: a request line over [`MAX_LINE`].
    pub(super) fn uri_too_long() -> Self {
        Self {
            status: StatusCode::URI_TOO_LONG,
            message: "The request line is longer than 16 KiB: the request target is too long".into(),
            reason: reason::URI_TOO_LONG,
        }
    }

    /// A 431 `too_many_headers`: more than [`MAX_HEADERS`] header fields.
    pub(super) fn too_many_headers() -> Self {
        Self {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: format!("The request has more than {MAX_HEADERS} header fields"),
            reason: reason::TOO_MANY_HEADERS,
        }
    }

    /// A 501 `unsupported_transfer_encoding`: a transfer coding other than `chunked`.
    pub(super) fn unsupported_transfer_encoding() -> Self {
        Self {
            status: StatusCode::NOT_IMPLEMENTED,
            message: "Transfer-Encoding is not supported: send chunked, or a Content-Length".into(),
            reason: reason::UNSUPPORTED_TRANSFER_ENCODING,
        }
    }
}

/// Per connection: which request (by position) was replaced by the stand-in, and how many
/// requests the handler has seen.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Heads read so far (the stand-in included).
    pub(super) heads: AtomicU64,
    handled: AtomicU64,
    /// The position of the request replaced by the stand-in, and why.
    pub(super) rejection: Mutex<Option<(u64, Rejection)>>,
}

impl ConnState {
    /// Called once per request by the handler, in order: the rejection when this request is
    /// the stand-in for a rejected head.
    pub fn take_rejection(&self) -> Option<Rejection> {
        let index = self.handled.fetch_add(1, Ordering::SeqCst);
        let mut slot = self.rejection.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((i, _)) if *i == index => slot.take().map(|(_, r)| r),
            _ => None,
        }
    }
}

/// The connection info the public listener's handler gets: the client's address and the
/// connection's check state.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub conn: Arc<ConnState>,
}

/// A TCP listener whose connections are [`Checked`].
pub struct CheckedListener(pub TcpListener);

impl Listener for CheckedListener {
    type Io = Checked<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnState::default());
        (Checked::new(stream, conn.clone()), Peer { addr, conn })
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer { addr: self.0.local_addr()?, conn: Arc::new(ConnState::default()) })
    }
}
