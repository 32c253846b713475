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

use axum::http::Uri;
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
