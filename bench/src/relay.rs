//! A network that looks like AWS, in user space: a TCP relay that holds every chunk it reads
//! for a fixed one-way delay before writing it on, in each direction, in order.
//!
//! netem is not available on these kernels, so the bench puts this relay where a request
//! would cross the VPC: between the per-request validation proxy and auth-svc, and in front of
//! PostgreSQL (RDS is across the network from every ECS task). Within one availability zone a
//! round trip is about 0.2-0.4 ms, so the bench uses 0.25 ms each way.
//!
//! **Timers.** tokio's timer wheel ticks in whole milliseconds and rounds a deadline up to the
//! next tick: `tokio::time::sleep(250 µs)` sleeps 1-2 ms (measured here: p50 1.13 ms), four
//! times the delay wanted. The relay therefore does its I/O on tokio but waits on a
//! [`DelayLine`]: one OS thread that sleeps with a futex timeout (`recv_timeout`, an hrtimer
//! with the default 50 µs timer slack) and wakes each chunk's writer. The thread learns how
//! late its timed wake-ups run (an exponentially weighted mean), asks to be woken that much
//! earlier and yields the CPU for the last few microseconds, so no chunk leaves early and few
//! leave much late; every hold is recorded ([`HoldStats`]) and the bench reports what it got.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;
/// Starting guess of how late a futex wake-up runs (timer slack plus scheduling).
const INITIAL_LATENESS: Duration = Duration::from_micros(60);
/// Holds recorded at most (the newest are dropped beyond it; enough for percentiles).
const MAX_SAMPLES: usize = 1_000_000;

struct Wake {
    at: Instant,
    seq: u64,
    done: oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A sub-millisecond timer for async code: a thread that completes each request's oneshot at
/// its deadline (see the module comment for why not tokio's timer).
#[derive(Clone)]
pub struct DelayLine {
    tx: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl DelayLine {
    /// Starts the timer thread; it ends when the last clone is dropped.
    pub fn start() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new().name("delay-line".into()).spawn(move || timer_thread(&rx))?;
        Ok(Self { tx })
    }

    /// Resolves at `at` (give or take the wake-up jitter the stats show).
    pub async fn until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (done, wait) = oneshot::channel();
        if self.tx.send((at, done)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn timer_thread(rx: &mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut heap: BinaryHeap<Reverse<Wake>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut lateness = INITIAL_LATENESS;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(w)| w.at <= now) {
            if let Some(Reverse(w)) = heap.pop() {
                let _ = w.done.send(());
            }
        }
        let received = match heap.peek() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(Reverse(next)) => {
                let wake = next.at.checked_sub(lateness).unwrap_or(next.at);
                if wake <= now {
                    // Closer than a timed wake-up can hit: yield until it is due (at most
                    // `lateness`, tens of microseconds).
                    std::thread::yield_now();
                    continue;
                }
                let result = rx.recv_timeout(wake - now);
                if matches!(result, Err(RecvTimeoutError::Timeout)) {
                    // Learn how late a timed wake-up runs: 1/8 of the newest, 7/8 of the past.
                    let late = Instant::now().saturating_duration_since(wake);
                    lateness = (lateness * 7 + late.min(Duration::from_millis(1))) / 8;
                }
                result
            }
        };
        match received {
            Ok((at, done)) => {
                seq += 1;
                heap.push(Reverse(Wake { at, seq, done }));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// How long chunks were actually held (µs), for the report.
#[derive(Debug, Clone, Default)]
pub struct HoldStats {
    samples: Arc<Mutex<Vec<u32>>>,
}

/// Percentiles of the holds, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct HoldSummary {
    pub chunks: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl HoldStats {
    fn record(&self, held: Duration) {
        if let Ok(mut s) = self.samples.lock()
            && s.len() < MAX_SAMPLES
        {
            s.push(u32::try_from(held.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// Percentiles of every hold so far.
    pub fn summary(&self) -> HoldSummary {
        let mut v = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        if v.is_empty() {
            return HoldSummary::default();
        }
        v.sort_unstable();
        let at = |q: f64| f64::from(v[((v.len() - 1) as f64 * q) as usize]) / 1000.0;
        HoldSummary { chunks: v.len(), p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }

    /// Forgets the holds so far (each cell reports its own).
    pub fn clear(&self) {
        if let Ok(mut s) = self.samples.lock() {
            s.clear();
        }
    }
}

/// A running relay.
pub struct Relay {
    pub listen: SocketAddr,
    pub holds: HoldStats,
    /// Bytes relayed from the upstream to clients (answers), and from clients (requests).
    pub bytes: Arc<Bytes2>,
    task: tokio::task::JoinHandle<()>,
}

/// Byte counts of a relay, by direction.
#[derive(Debug, Default)]
pub struct Bytes2 {
    pub to_upstream: AtomicU64,
    pub from_upstream: AtomicU64,
}

impl Bytes2 {
    /// (to upstream, from upstream) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.to_upstream.load(Ordering::Relaxed), self.from_upstream.load(Ordering::Relaxed))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Listens on `listen` (port 0: any) and relays every connection to `upstream`, holding
    /// each chunk `delay` in each direction. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, delay: Duration, line: DelayLine) -> Result<Self> {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("relay: bind {listen}"))?;
        let listen = listener.local_addr()?;
        let holds = HoldStats::default();
        let bytes = Arc::new(Bytes2::default());
        let (stats, counts) = (holds.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (line, stats, counts) = (line.clone(), stats.clone(), counts.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay_connection(client, server, delay, &line, &stats, &counts).await;
                    }
                });
            }
        });
        Ok(Self { listen, holds, bytes, task })
    }
}

async fn relay_connection(
    client: TcpStream,
    server: TcpStream,
    delay: Duration,
    line: &DelayLine,
    stats: &HoldStats,
    counts: &Bytes2,
) {
    // Small request/response messages: Nagle would add its own delay on top of ours.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        direction(client_read, server_write, delay, line, stats, &counts.to_upstream),
        direction(server_read, client_write, delay, line, stats, &counts.from_upstream),
    );
}

/// One direction: a reader stamping chunks as they arrive, a writer releasing each at its
/// stamp + `delay`. One queue, one writer: order is kept, and since the delay is constant the
/// deadlines only grow.
async fn direction(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    line: &DelayLine,
    stats: &HoldStats,
    count: &AtomicU64,
) {
    let (tx, mut rx) = tmpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now(), None));
                    return;
                }
                Ok(n) => {
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    if tx.send((Instant::now(), Some(Bytes::copy_from_slice(&buf[..n])))).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            if !delay.is_zero() {
                line.until(arrived + delay).await;
                stats.record(arrived.elapsed());
            }
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// What `tokio::time::sleep(delay)` actually sleeps here (p50, p99 in ms over `n` sleeps), for
/// the report: the reason the relay has its own timer thread.
pub async fn tokio_sleep_overshoot(delay: Duration, n: usize) -> (f64, f64) {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        tokio::time::sleep(delay).await;
        v.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[(v.len() - 1) * 99 / 100])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trips_take_twice_the_delay_and_bytes_stay_in_order() {
        let echo = echo_server().await;
        let delay = Duration::from_micros(2500);
        let relay =
            Relay::start("127.0.0.1:0".parse().unwrap(), echo, delay, DelayLine::start().unwrap()).await.unwrap();
        let mut s = TcpStream::connect(relay.listen).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut rtts = Vec::new();
        for i in 0..20u8 {
            let msg = [i; 100];
            let start = Instant::now();
            s.write_all(&msg).await.unwrap();
            let mut got = [0u8; 100];
            s.read_exact(&mut got).await.unwrap();
            rtts.push(start.elapsed());
            assert_eq!(got, msg);
        }
        rtts.sort();
        // Never early (each direction holds at least the delay), and, at best, not the 1 ms
        // ticks of tokio's timer wheel on top (that would round each 2.5 ms hold up to 3-4 ms,
        // 6 ms or more in all). The best of 20: a busy machine delays some round trips, not all.
        assert!(rtts[0] >= delay * 2, "{rtts:?}");
        assert!(rtts[0] < delay * 2 + Duration::from_micros(900), "{rtts:?}");
        let holds = relay.holds.summary();
        assert_eq!(holds.chunks, 40);
        assert!(holds.p50_ms >= 2.5, "{holds:?}");
        assert_eq!(relay.bytes.get(), (2000, 2000), "both directions counted");

        // A burst of writes arrives whole and in order.
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            for part in payload.chunks(7_000) {
                w.write_all(part).await.unwrap();
            }
            w
        });
        let mut got = vec![0u8; expected.len()];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn the_delay_line_wakes_in_deadline_order() {
        let line = DelayLine::start().unwrap();
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Deadlines far enough apart that a busy machine, which may be slow to poll the three
        // tasks, still registers them all before the first one is due.
        for (i, ms) in [(0, 300u64), (1, 100), (2, 200)] {
            let (line, order) = (line.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                line.until(start + Duration::from_millis(ms)).await;
                order.lock().unwrap().push(i);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 0]);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
