//! [`Checked`]: a connection whose request heads are checked ([`super::head`]) before hyper
//! reads them. It follows each body's framing to find the next head, and replaces a rejected
//! head with a stand-in request that the handler answers with the rejection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::head::{Framing, MAX_HEAD, MAX_HEADERS, MAX_LINE, check, head_too_large, parse_error, partial_too_long};
use super::{ConnState, Rejection};

/// What hyper is given in place of a rejected head: answered from [`ConnState`], never
/// forwarded.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: front-door\r\nconnection: close\r\n\r\n";

/// Where the reader is in the byte stream of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// `n` more body bytes (Content-Length).
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    /// Framing we do not follow (CONNECT, or chunked framing hyper will reject itself): bytes
    /// pass through unchecked and hyper ends the connection.
    Opaque,
    /// A head was rejected: after the stand-in, end of stream.
    Rejected,
}

enum Step {
    Progress,
    NeedMore,
}

/// A connection whose request heads are checked before hyper reads them.
pub struct Checked<S> {
    io: S,
    state: State,
    input: BytesMut,
    output: BytesMut,
    eof: bool,
    conn: Arc<ConnState>,
}

impl<S> Checked<S> {
    /// Wraps `io`; `conn` records a rejection for the handler.
    pub fn new(io: S, conn: Arc<ConnState>) -> Self {
        Self { io, state: State::Head, input: BytesMut::new(), output: BytesMut::new(), eof: false, conn }
    }

    fn pass(&mut self, n: usize) {
        let bytes = self.input.split_to(n);
        self.output.extend_from_slice(&bytes);
    }

    fn reject(&mut self, rejection: Rejection) {
        let index = self.conn.heads.fetch_add(1, Ordering::SeqCst);
        *self.conn.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some((index, rejection));
        self.input.clear();
        self.output.extend_from_slice(STAND_IN);
        self.state = State::Rejected;
    }

    fn step(&mut self) -> Step {
        match self.state {
            State::Head => self.head(),
            State::Body(0) => {
                self.state = State::Head;
                Step::Progress
            }
            State::Body(n) | State::ChunkData(n) => {
                if self.input.is_empty() {
                    return Step::NeedMore;
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.input.len());
                self.pass(take);
                let left = n - take as u64;
                self.state = match self.state {
                    State::Body(_) => State::Body(left),
                    _ if left == 0 => State::ChunkDataEnd,
                    _ => State::ChunkData(left),
                };
                Step::Progress
            }
            State::ChunkSize => match httparse::parse_chunk_size(&self.input) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.pass(used);
                    self.state = if size == 0 { State::Trailers } else { State::ChunkData(size) };
                    Step::Progress
                }
                Ok(httparse::Status::Partial) if self.input.len() < MAX_LINE => Step::NeedMore,
                _ => self.opaque(),
            },
            State::ChunkDataEnd => {
                if self.input.len() < 2 {
                    return Step::NeedMore;
                }
                if &self.input[..2] != b"\r\n" {
                    return self.opaque();
                }
                self.pass(2);
                self.state = State::ChunkSize;
                Step::Progress
            }
            State::Trailers => match self.input.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    let last = end <= 1;
                    self.pass(end + 1);
                    if last {
                        self.state = State::Head;
                    }
                    Step::Progress
                }
                None if self.input.len() < MAX_LINE => Step::NeedMore,
                None => self.opaque(),
            },
            State::Opaque => {
                if self.input.is_empty() {
                    return Step::NeedMore;
                }
                let n = self.input.len();
                self.pass(n);
                Step::Progress
            }
            State::Rejected => Step::NeedMore,
        }
    }

    fn opaque(&mut self) -> Step {
        self.state = State::Opaque;
        Step::Progress
    }

    fn head(&mut self) -> Step {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        let blank = self.input.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        self.input.advance(blank);
        if self.input.is_empty() {
            return Step::NeedMore;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(&self.input);
        let outcome = match parsed {
            // A complete head can arrive in one read: its size is checked here too.
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Ok(Err(head_too_large())),
            Ok(httparse::Status::Complete(len)) => Ok(check(&req).map(|framing| (len, framing))),
            Ok(httparse::Status::Partial) => Err(partial_too_long(&self.input)),
            Err(e) => Ok(Err(parse_error(e))),
        };
        match outcome {
            Ok(Ok((len, framing))) => {
                self.conn.heads.fetch_add(1, Ordering::SeqCst);
                self.pass(len);
                self.state = match framing {
                    Framing::Length(n) => State::Body(n),
                    Framing::Chunked => State::ChunkSize,
                    Framing::Opaque => State::Opaque,
                };
                Step::Progress
            }
            Ok(Err(rejection)) | Err(Some(rejection)) => {
                self.reject(rejection);
                Step::Progress
            }
            Err(None) => Step::NeedMore,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Checked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Rejected {
                // Not end-of-stream: hyper would drop the connection on a client's EOF without
                // answering. The stand-in says `connection: close`, so hyper closes it once the
                // rejection is written; until then there is nothing more to read.
                return Poll::Pending;
            }
            if let Step::Progress = this.step() {
                continue;
            }
            if this.eof {
                // An incomplete message at the end: hyper sees it as it is and ends the
                // connection its own way.
                if !this.input.is_empty() {
                    this.state = State::Opaque;
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.input.extend_from_slice(read.filled());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Checked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use tokio::io::AsyncReadExt;

    /// What hyper would read from `input`, and the rejection recorded for the connection.
    async fn through(input: &[u8]) -> (Vec<u8>, Option<(u64, Rejection)>) {
        let conn = Arc::new(ConnState::default());
        let mut checked = Checked::new(input, conn.clone());
        let mut out = Vec::new();
        // After a rejection the stream stays open (pending) until hyper closes it.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), checked.read_to_end(&mut out)).await;
        let rejection = conn.rejection.lock().map(|r| r.clone()).unwrap_or_default();
        (out, rejection)
    }

    #[tokio::test]
    async fn valid_requests_pass_unchanged_across_framings() {
        let input = b"POST /tasks HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
GET /y HTTP/1.1\r\nhost: a\r\n\r\n";
        let (out, rejection) = through(input).await;
        assert_eq!(out, input.to_vec());
        assert_eq!(rejection, None);
    }

    #[tokio::test]
    async fn bad_heads_are_replaced_by_the_stand_in_and_the_reason_is_kept() {
        let cases: [(&[u8], StatusCode, &str); 7] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", StatusCode::BAD_REQUEST, "Host"),
            (b"GET / HTTP/1.1\r\n\r\n", StatusCode::BAD_REQUEST, "Host"),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                StatusCode::BAD_REQUEST,
                "Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                StatusCode::BAD_REQUEST,
                "both",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                StatusCode::NOT_IMPLEMENTED,
                "Transfer-Encoding",
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", StatusCode::BAD_REQUEST, "name"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", StatusCode::BAD_REQUEST, "number"),
        ];
        for (input, status, word) in cases {
            let (out, rejection) = through(input).await;
            assert_eq!(out, STAND_IN.to_vec(), "{}", String::from_utf8_lossy(input));
            let (index, r) = rejection.expect("rejected");
            assert_eq!((index, r.status), (0, status), "{}", String::from_utf8_lossy(input));
            assert!(r.message.contains(word), "{}: {}", String::from_utf8_lossy(input), r.message);
            let reason = if status == StatusCode::NOT_IMPLEMENTED {
                "unsupported_transfer_encoding"
            } else {
                "malformed_request"
            };
            assert_eq!(r.reason, reason, "{}", String::from_utf8_lossy(input));
        }
    }

    #[tokio::test]
    async fn a_bad_head_after_good_ones_is_rejected_in_its_place() {
        let good = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi".to_vec();
        let mut input = good.clone();
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
        let (out, rejection) = through(&input).await;
        assert_eq!(out, [good, STAND_IN.to_vec()].concat());
        assert_eq!(rejection.map(|(i, _)| i), Some(1), "the second request is the stand-in");
        let conn = ConnState::default();
        *conn.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some((1, Rejection::malformed("x")));
        assert_eq!(conn.take_rejection(), None, "request 0 is forwarded");
        assert!(conn.take_rejection().is_some(), "request 1 is answered with the rejection");
    }

    #[tokio::test]
    async fn oversized_heads_are_rejected() {
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        input.extend_from_slice(b"\r\n\r\n");
        let (_, rejection) = through(&input).await;
        assert!(rejection.is_some_and(|(_, r)| r.reason == "headers_too_large" && r.message.contains("X-Big")));

        // A request line over 16 KiB, complete or not yet: the target is too long.
        let mut line = b"GET /".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_LINE));
        for input in [line.clone(), [line, b" HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()].concat()] {
            let (_, rejection) = through(&input).await;
            let (_, r) = rejection.expect("rejected");
            assert_eq!((r.status, r.reason), (StatusCode::URI_TOO_LONG, "uri_too_long"));
        }

        // Lines under 16 KiB but a whole head over 64 KiB, complete in one read (the case that
        // passed before: only incomplete heads were measured).
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..9 {
            input.extend_from_slice(format!("X-Big-{i}: ").as_bytes());
            input.extend(std::iter::repeat_n(b'a', 8 * 1024));
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert!(input.len() > MAX_HEAD && input.len() < 80 * 1024);
        let (out, rejection) = through(&input).await;
        assert_eq!(out, STAND_IN.to_vec());
        assert!(rejection.is_some_and(|(_, r)| r.reason == "headers_too_large" && r.message.contains("64 KiB")));
    }
}
