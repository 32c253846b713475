//! The client's request body on its way to a target: a failure reading it is the client's
//! (a 400, not a 502), and what a target left unread after answering early is drained so the
//! client can read that answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body_util::BodyExt;

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
    /// Wraps the client's body; `failed` starts false.
    pub fn new(body: Body) -> Self {
        Self { inner: Some(body), failed: Arc::new(AtomicBool::new(false)) }
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => self.failed.store(true, Ordering::Relaxed),
            Poll::Ready(None) => self.inner = None,
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
