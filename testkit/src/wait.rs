//! Waiting for what a test asserts: poll a condition until it holds or a deadline passes, then
//! fail naming what never happened. A fixed sleep followed by an assertion either passes
//! vacuously on a slow machine (the event had not happened yet) or fails on a loaded one; a
//! poll with a generous deadline does neither.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`until`] and [`until_some`] poll.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `check` every [`POLL`] until it returns `Some`, and returns that value. Panics with
/// "`what` did not happen within `deadline`" when it does not.
pub async fn until_some<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "{what} did not happen within {deadline:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` every [`POLL`] until it returns `true`; returns how long that took. Panics with
/// "`what` did not happen within `deadline`" when it does not.
pub async fn until<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    until_some(what, deadline, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await;
    start.elapsed()
}

/// Whether nothing accepts TCP connections on `addr` any more (a listener closed on SIGTERM).
pub async fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = until_some("the third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n >= 3).then_some(n)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never did not happen within")]
    async fn fails_naming_what_did_not_happen() {
        until("never", Duration::from_millis(60), || async { false }).await;
    }
}
