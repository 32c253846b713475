//! Logging set-up: JSON lines for ECS/CloudWatch (`LOG_FORMAT=json`), compact text locally.
//! The filter comes from `RUST_LOG` (default `info`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs to stdout, written on the calling thread (one `write` per line).
pub fn init(service: &'static str) {
    install(service, std::io::stdout);
}

/// Logs to stdout in batches: every thread appends its formatted line to one buffer, and a
/// background thread writes the buffer out every `interval` (one `write` for all the lines of
/// that interval). A request thread never makes a system call and never wakes another thread
/// to log; a queue-based writer (`tracing-appender`) wakes its thread once per line, which
/// cost the gateway more than the `write` it saved (docs/benchmarks.md). A buffer that grows
/// past [`BATCH_LIMIT`] is written by the thread that filled it (back-pressure, nothing is
/// dropped). Lines reach stdout up to `interval` late. The returned guard writes what is left
/// when dropped: keep it alive until `main` returns (the gateway leaves pingora through
/// `Server::run`, not `run_forever`, whose `std::process::exit` would skip the drop).
pub fn init_batched(service: &'static str, interval: Duration) -> BatchGuard {
    let writer = BatchedStdout::default();
    let flusher = writer.clone();
    let spawned = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            flusher.flush_now();
        }
    });
    if let Err(e) = spawned {
        eprintln!("{service}: cannot start the log writer thread ({e}); logging unbatched");
        install(service, std::io::stdout);
        return BatchGuard(None);
    }
    install(service, writer.clone());
    BatchGuard(Some(writer))
}

/// Above this many buffered bytes the logging thread writes the batch itself.
pub const BATCH_LIMIT: usize = 1 << 20;

/// The shared buffer behind [`init_batched`]; also a `MakeWriter` of its own.
#[derive(Clone, Default)]
pub struct BatchedStdout {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl BatchedStdout {
    /// Writes what is buffered to stdout.
    pub fn flush_now(&self) {
        let batch = match self.buffer.lock() {
            Ok(mut b) if !b.is_empty() => std::mem::take(&mut *b),
            _ => return,
        };
        let _ = std::io::stdout().lock().write_all(&batch);
    }

    /// The bytes waiting for the next flush (tests).
    pub fn pending(&self) -> usize {
        self.buffer.lock().map_or(0, |b| b.len())
    }
}

impl Write for &BatchedStdout {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut b = self.buffer.lock().map_err(|_| std::io::Error::other("log buffer poisoned"))?;
            b.extend_from_slice(line);
            b.len() > BATCH_LIMIT
        };
        if full {
            self.flush_now();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = &'a BatchedStdout;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Writes the remaining batch when dropped.
pub struct BatchGuard(Option<BatchedStdout>);

impl Drop for BatchGuard {
    fn drop(&mut self) {
        if let Some(w) = &self.0 {
            w.flush_now();
        }
    }
}

fn install<W>(service: &'static str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(writer);
    // try_init: tests may initialise more than once.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
    tracing::debug!(service, "telemetry initialised");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_whole_and_in_order_until_a_flush() {
        let w = BatchedStdout::default();
        (&w).write_all(b"{\"a\":1}\n").unwrap();
        (&w).write_all(b"{\"b\":2}\n").unwrap();
        assert_eq!(w.pending(), 16);
        assert_eq!(*w.buffer.lock().unwrap(), b"{\"a\":1}\n{\"b\":2}\n".to_vec());
        w.flush_now();
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        let w = BatchedStdout::default();
        let line = vec![b' '; 1000];
        for _ in 0..(BATCH_LIMIT / 1000 + 1) {
            (&w).write_all(&line).unwrap();
        }
        assert!(w.pending() < BATCH_LIMIT, "{}", w.pending());
    }
}
