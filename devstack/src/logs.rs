//! The run command's output: one line-oriented sink ([`LogSink`]) where every process's lines
//! are printed with its name as prefix (`auth-1     | ...`), the children's copied from their
//! pipes, and the run command's own `tracing` events (the front door's) through
//! [`LogSink::install_tracing`].

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A shared, line-oriented log destination: the run command's stdout, or a file.
#[derive(Clone)]
pub struct LogSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    width: usize,
    terminal: bool,
    show_health_checks: bool,
}

/// An access-log line of a health check that answered 200, in the text or JSON format.
fn is_passing_health_check(line: &str) -> bool {
    let plain = strip_ansi(line);
    (plain.contains("/auth/health") || plain.contains("/tasks/health"))
        && (plain.contains("status=200") || plain.contains("\"status\":200"))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter: ESC [ ... m
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink").field("width", &self.width).finish_non_exhaustive()
    }
}

impl LogSink {
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        let mut sink = Self::new(Box::new(std::io::stdout()));
        sink.terminal = std::io::stdout().is_terminal();
        sink
    }

    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Arc::new(Mutex::new(out)), width: 10, terminal: false, show_health_checks: false }
    }

    /// Whether the sink is a terminal: children get `NO_COLOR=1` otherwise, so a log file or
    /// a test's captured output has no escape codes.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Also print the children's access-log lines for successful health checks (hidden by
    /// default: with a check every 2 s per target they would drown everything else). The
    /// gateways log them at `info`; auth-svc and task-svc log them at `debug`
    /// (`platform::access_log`), so this shows theirs only when `RUST_LOG` enables it.
    pub fn with_health_checks(mut self, show: bool) -> Self {
        self.show_health_checks = show;
        self
    }

    /// Writes one line as `name | line`; names are padded so the columns line up.
    pub fn line(&self, name: &str, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (e.g. piped into `head`) must not take the stack down.
        let _ = writeln!(out, "{name:<width$} | {line}", width = self.width);
        let _ = out.flush();
    }

    /// Writes a block of text as is (the run command's banner, meant to be copied).
    pub fn block(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Copies `stream` to the sink line by line on a thread of its own until it closes.
    pub(crate) fn copy_lines(&self, name: &str, stream: impl Read + Send + 'static) {
        let sink = self.clone();
        let name = name.to_owned();
        let _ = std::thread::Builder::new().name(format!("log-{name}")).spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            // Lines are read as bytes: a child writing invalid UTF-8 still gets logged.
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&buf);
                if sink.show_health_checks || !is_passing_health_check(&text) {
                    sink.line(&name, text.trim_end_matches(['\n', '\r']));
                }
                buf.clear();
            }
        });
    }
}

impl LogSink {
    /// Installs the process's `tracing` subscriber: `info` and above of the crates in `prefixes`
    /// (`(target, prefix)`, e.g. `("front_door", "front-door")`) are printed to this sink as
    /// `prefix | message`, like a child's lines. Does nothing when a subscriber is already set
    /// (tests that start several stacks in one process).
    pub fn install_tracing(&self, prefixes: &[(&'static str, &'static str)]) {
        let mut registry: Vec<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>> =
            Vec::new();
        for (target, prefix) in prefixes {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(Prefixed { sink: self.clone(), prefix })
                .with_ansi(self.terminal)
                .without_time()
                .with_target(false)
                .with_filter(Targets::new().with_target(*target, LevelFilter::INFO));
            registry.push(Box::new(layer));
        }
        let _ = tracing_subscriber::registry().with(registry).try_init();
    }
}

/// A [`MakeWriter`] whose writers print each formatted event to the sink under `prefix`.
struct Prefixed {
    sink: LogSink,
    prefix: &'static str,
}

impl<'a> MakeWriter<'a> for Prefixed {
    type Writer = EventLines;

    fn make_writer(&'a self) -> Self::Writer {
        EventLines { sink: self.sink.clone(), prefix: self.prefix, buf: Vec::new() }
    }
}

/// One event's text, printed line by line when the formatter is done with it (on drop).
struct EventLines {
    sink: LogSink,
    prefix: &'static str,
    buf: Vec<u8>,
}

impl Write for EventLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventLines {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.buf).lines() {
            self.sink.line(self.prefix, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_health_checks_are_recognised() {
        let text = "\u{1b}[2m2026\u{1b}[0m INFO request: finished latency=0 ms status\u{1b}[2m=\u{1b}[0m200 method=GET path\u{1b}[2m=\u{1b}[0m/auth/health";
        assert!(is_passing_health_check(text));
        assert!(is_passing_health_check(r#"{"path":"/tasks/health","status":200}"#));
        assert!(!is_passing_health_check("path=\"/tasks/health\" status=502 upstream_status=0"));
        assert!(!is_passing_health_check("path=\"/tasks\" status=200"));
    }

    /// A `Write` whose bytes a test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn tracing_events_are_printed_with_their_prefix() {
        let captured = Captured::default();
        let sink = LogSink::new(Box::new(captured.clone()));
        sink.install_tracing(&[("front_door", "front-door")]);
        tracing::info!(target: "front_door::health", "task-1 (127.0.0.1:1) passed 2 health checks: in rotation");
        tracing::debug!(target: "front_door::health", "below the level");
        tracing::info!(target: "somewhere_else", "not ours");
        let text = String::from_utf8(captured.0.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].starts_with("front-door | "), "{text}");
        assert!(lines[0].ends_with("task-1 (127.0.0.1:1) passed 2 health checks: in rotation"), "{text}");
    }
}
