//! The front door's connections to its targets, tolerant of a target that answers early.
//!
//! A target may answer before it has read the whole request body: the gateway's 401 for a
//! missing token, task-svc's 413 for a body over its limit. It then closes the connection, and
//! the next write of the body fails (EPIPE/ECONNRESET) although the response is already in the
//! socket's receive buffer. hyper's client reports that write error instead of the response, so
//! the client would get a 502 where the ALB forwards the target's answer ("Troubleshoot your
//! Application Load Balancers": 502 is for a target that closed the connection *without* a
//! valid response). [`EarlyResponseIo`] therefore treats a write to a target that has closed as
//! done and keeps reading: hyper gets the response, the rest of the client's body is read and
//! dropped, and a target that closed without answering still ends as a read error, a 502.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::Uri;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to a target whose write side may have been closed by the target.
#[derive(Debug)]
pub struct EarlyResponseIo {
    stream: TcpStream,
    write_closed: bool,
}

impl EarlyResponseIo {
    /// A write error that means "the target closed its end", after which its response (if it
    /// sent one) can still be read.
    fn closed_by_target(e: &io::Error) -> bool {
        matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
    }
}

impl AsyncRead for EarlyResponseIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for EarlyResponseIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if Self::closed_by_target(&e) => {
                self.write_closed = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_closed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Err(e)) if Self::closed_by_target(&e) => {
                self.write_closed = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_shutdown(cx) {
            Poll::Ready(Err(e)) if Self::closed_by_target(&e) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl Connection for EarlyResponseIo {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

/// hyper-util's HTTP connector, handing out [`EarlyResponseIo`] connections.
#[derive(Debug, Clone)]
pub struct EarlyResponseConnector {
    inner: HttpConnector,
}

impl EarlyResponseConnector {
    pub fn new(inner: HttpConnector) -> Self {
        Self { inner }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<EarlyResponseIo>, io::Error>> + Send>>;

impl tower::Service<Uri> for EarlyResponseConnector {
    type Response = TokioIo<EarlyResponseIo>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await.map_err(io::Error::other)?;
            Ok(TokioIo::new(EarlyResponseIo { stream: io.into_inner(), write_closed: false }))
        })
    }
}

/// The client's request body on its way to the target.
///
/// A failure while reading it (broken chunked framing, a body cut short) is the client's
/// mistake: `failed` lets the front door answer 400 where a failure of the target is a 502. And
/// when the target answered before taking all of it, the rest is still read and dropped
/// (up to [`DRAIN_LIMIT`] bytes): otherwise the connection to the client closes while the client
/// is still sending, and its next write fails before it reads the answer.
pub struct ClientBody {
    inner: Option<Body>,
    /// Set when reading the client's body failed.
    pub failed: Arc<AtomicBool>,
}

/// How much of an unread request body is drained after an early answer.
const DRAIN_LIMIT: usize = 64 << 20;

impl ClientBody {
    pub fn new(body: Body) -> Self {
        Self { inner: Some(body), failed: Arc::new(AtomicBool::new(false)) }
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return std::task::Poll::Ready(None) };
        let polled = std::pin::Pin::new(inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Err(_))) => self.failed.store(true, Ordering::Relaxed),
            std::task::Poll::Ready(None) => self.inner = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.as_ref().map_or_else(|| http_body::SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let Some(mut rest) = self.inner.take() else { return };
        if rest.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut drained = 0usize;
                while let Some(Ok(frame)) = rest.frame().await {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                    if drained > DRAIN_LIMIT {
                        break;
                    }
                }
            });
        }
    }
}
