//! `[access_log]`: which requests get an access line. Every refusal, error and request whose
//! trace is sampled gets one; of the successful rest (status below 400), the share
//! `successes` (0..=1; default 0.01, one in a hundred; 1 logs every request), and every success
//! that took `slow_ms` or more (default 500 ms; 0: none for its duration). A line costs
//! about 5% of the gateway's instructions per request (about 7,000) and more of its CPU under
//! load (2% to 29% in two runs), where each line also wakes the log writer's thread (docs/benchmarks.md, "Sampled
//! access lines"), so by default the gateway logs what an operator reads (failures) and a
//! sample to see the traffic; the metrics count every request either way.
//!
//! The line itself is [`AccessLine`]: with JSON logs (`LOG_FORMAT=json`, as on ECS) it is
//! serialized straight into the log stream ([`platform::telemetry::JsonLines`]), at a fraction
//! of what the same fields cost as a `tracing` event through the JSON formatter
//! (docs/benchmarks.md); with compact logs (local runs) it is that event.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use opentelemetry::trace::TraceId;
use platform::config::ConfigError;
use platform::telemetry::JsonLines;
use serde::{Serialize, Serializer};

use crate::config::AccessLogSection;

/// The largest `slow_ms`: an hour, past any timeout of the hop.
const MAX_SLOW_MS: u64 = 3_600_000;

/// `[access_log]`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccessLogSettings {
    /// The share of successful requests given a line, 0..=1.
    pub successes: f64,
    /// A success that took this long or longer gets a line whatever the share; `None`: no
    /// success does for its duration.
    pub slow: Option<Duration>,
}

impl TryFrom<&AccessLogSection> for AccessLogSettings {
    type Error = ConfigError;

    fn try_from(s: &AccessLogSection) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&s.successes) {
            return Err(ConfigError::new("[access_log] successes", format!("{} is out of range 0..=1", s.successes)));
        }
        if s.slow_ms > MAX_SLOW_MS {
            return Err(ConfigError::new("[access_log] slow_ms", format!("{} is above {MAX_SLOW_MS}", s.slow_ms)));
        }
        let slow = (s.slow_ms > 0).then(|| Duration::from_millis(s.slow_ms));
        Ok(Self { successes: s.successes, slow })
    }
}

impl AccessLogSettings {
    /// Whether the request answered `status` (0: no response was written) after `elapsed`, in
    /// the trace `trace_id` (`sampled`: the trace is sampled), gets an access line; `failed`:
    /// the request ended in an error (e.g. the upstream or the client broke off a 200's body). The share of
    /// successes is taken on the trace id's random low 64 bits, as a trace-id-ratio sampler
    /// does: a request's line does not depend on which gateway answered it, and ids chosen by a
    /// client choose only whether their own successes are logged.
    pub fn logs(&self, status: u16, failed: bool, elapsed: Duration, trace_id: TraceId, sampled: bool) -> bool {
        if status == 0 || status >= 400 || failed || sampled || self.successes >= 1.0 {
            return true;
        }
        if self.slow.is_some_and(|slow| elapsed >= slow) {
            return true;
        }
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or([0; 8]));
        // `as` saturates: 1.0 would overflow, and is answered above.
        (low as f64) < self.successes * (u64::MAX as f64)
    }
}

/// One request's access line. As JSON, the keys and order of a `tracing` event's line
/// (`timestamp`, `level`, `message`, then the fields), so a query over the gateway's log group
/// reads the same keys whichever way the line was written (one difference: the event's line for
/// a sampled request also carried the request span's fields as a `span` object; the trace is
/// found by `trace_id`):
///
/// `{"timestamp":"2026-12-04T19:47:54.418515Z","level":"INFO","message":"request","method":"GET",
/// "path":"/tasks/4","status":200,"upstream_status":200,"duration_ms":1.6,"request_id":"...",
/// "trace_id":"<32 hex>","decision":"allow","reason":"ok","user_id":1,"error":""}`
#[derive(Debug, Serialize)]
pub struct AccessLine<'a> {
    /// When the line was made, RFC 3339 in UTC with microseconds (as `tracing-subscriber` writes).
    #[serde(serialize_with = "rfc3339_micros")]
    pub timestamp: SystemTime,
    pub level: &'static str,
    pub message: &'static str,
    pub method: &'a str,
    /// The path only: a query string can carry anything. Never the token: a segment holding a
    /// JWT is `[redacted]` (`platform::access_log::path_for_log`).
    pub path: &'a str,
    /// The status the client got; 0 when no response was written.
    pub status: u16,
    /// task-svc's status; 0 when the request was not forwarded or got no answer.
    pub upstream_status: u16,
    /// From the request's arrival to the end of its response, milliseconds rounded up to the
    /// microsecond ([`AccessLine::millis`]).
    pub duration_ms: f64,
    pub request_id: &'a str,
    /// The W3C trace id, 32 lowercase hex digits.
    pub trace_id: &'a str,
    pub decision: &'static str,
    pub reason: &'static str,
    /// The authenticated user; 0 for none.
    pub user_id: i64,
    /// pingora's error type when the request failed (`ConnectRefused`, ...); empty otherwise.
    pub error: &'a str,
}

impl AccessLine<'_> {
    /// `elapsed` in milliseconds, rounded up to the microsecond (any time at all shows as at
    /// least 0.001): `0.496` for 495.87 µs, where `as_secs_f64() * 1000.0` writes
    /// `0.49587000000000003` (the product's binary rounding, printed in full by the shortest
    /// round-trip form that JSON and `Display` use).
    pub fn millis(elapsed: std::time::Duration) -> f64 {
        let micros = elapsed.as_nanos().div_ceil(1_000).min(u128::from(u64::MAX)) as u64;
        // A quotient of two exact doubles is the double nearest the decimal, so it prints as one.
        micros as f64 / 1_000.0
    }
}

fn rfc3339_micros<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&DateTime::<Utc>::from(*at).to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Where access lines go: serialized into the JSON log stream when the logs are JSON and
/// `RUST_LOG` lets `access` events at `info` through (decided once, at start-up: `RUST_LOG` is
/// read once), else a `tracing` event (the compact format, filtered as any event).
#[derive(Debug, Clone, Default)]
pub struct AccessSink {
    lines: JsonLines,
    /// The logs are JSON and take the line.
    json_enabled: bool,
}

impl AccessSink {
    /// The sink of `lines`. The filter is asked under `RUST_LOG`'s filter alone
    /// ([`platform::telemetry::under_env_filter`]), never of the process's subscriber on a
    /// request's thread: there an `enabled!` with no event after it would make the next span
    /// on that thread miss the OpenTelemetry layer.
    pub fn new(lines: JsonLines) -> Self {
        let json_enabled = lines.is_json()
            && platform::telemetry::under_env_filter(|| tracing::enabled!(target: "access", tracing::Level::INFO));
        Self { lines, json_enabled }
    }
}

impl AccessLine<'_> {
    /// Writes the line to `sink`: serialized when the logs are JSON, else as an `info` event of
    /// target `access` (which the compact format prints). `RUST_LOG=warn` (or `access=off`)
    /// silences both.
    pub fn write(&self, sink: &AccessSink) {
        if sink.lines.is_json() {
            if sink.json_enabled {
                sink.lines.write(self);
            }
            return;
        }
        // Every field is a number or a `&str`: a `Display` field goes through the formatting
        // machinery, which cost this line a third more.
        tracing::info!(
            target: "access",
            method = self.method,
            path = self.path,
            status = self.status,
            upstream_status = self.upstream_status,
            duration_ms = self.duration_ms,
            request_id = self.request_id,
            trace_id = self.trace_id,
            decision = self.decision,
            reason = self.reason,
            user_id = self.user_id,
            error = self.error,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(successes: f64) -> AccessLogSettings {
        AccessLogSettings::try_from(&AccessLogSection { successes, slow_ms: 0 }).unwrap_or_else(|e| panic!("{e}"))
    }

    const QUICK: Duration = Duration::from_millis(1);

    fn id(low: u64) -> TraceId {
        TraceId::from((0x6b11_a173_u128 << 96) | u128::from(low))
    }

    #[test]
    fn refusals_errors_and_sampled_traces_are_always_logged() {
        let none = settings(0.0);
        for status in [0, 400, 401, 403, 404, 429, 431, 500, 502, 503, 504] {
            assert!(none.logs(status, false, QUICK, id(u64::MAX), false), "{status}");
        }
        assert!(none.logs(200, false, QUICK, id(u64::MAX), true), "a sampled trace's success");
        assert!(none.logs(200, true, QUICK, id(u64::MAX), false), "a 200 whose body broke off");
        assert!(!none.logs(200, false, QUICK, id(0), false));
        assert!(!none.logs(304, false, QUICK, id(0), false));
        assert!(settings(1.0).logs(200, false, QUICK, id(u64::MAX), false));
    }

    #[test]
    fn the_share_of_successes_follows_the_trace_id() {
        let tenth = settings(0.1);
        assert!(tenth.logs(200, false, QUICK, id(0), false));
        assert!(!tenth.logs(200, false, QUICK, id(u64::MAX / 2), false));
        let logged = (0..10_000u64)
            .filter(|i| tenth.logs(200, false, QUICK, id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), false))
            .count();
        assert!((800..1200).contains(&logged), "{logged} of 10000 at 0.1");
    }

    #[test]
    fn a_success_at_or_over_slow_ms_is_logged_whatever_the_share() {
        let none = AccessLogSettings::try_from(&AccessLogSection { successes: 0.0, slow_ms: 500 }).unwrap();
        assert_eq!(none.slow, Some(Duration::from_millis(500)));
        assert!(none.logs(200, false, Duration::from_millis(500), id(u64::MAX), false));
        assert!(none.logs(201, false, Duration::from_secs(30), id(u64::MAX), false));
        assert!(!none.logs(200, false, Duration::from_micros(499_999), id(u64::MAX), false));
        let off = AccessLogSettings::try_from(&AccessLogSection { successes: 0.0, slow_ms: 0 }).unwrap();
        assert_eq!(off.slow, None);
        assert!(!off.logs(200, false, Duration::from_secs(3600), id(u64::MAX), false), "0 turns the rule off");
    }

    #[test]
    fn a_duration_is_written_in_milliseconds_to_the_microsecond() {
        for (elapsed, written) in [
            (Duration::from_nanos(495_870), "0.496"),
            (Duration::from_nanos(1_500_000), "1.5"),
            (Duration::from_nanos(1), "0.001"),
            (Duration::ZERO, "0.0"),
            (Duration::from_secs(61) + Duration::from_nanos(123_456_001), "61123.457"),
        ] {
            let ms = AccessLine::millis(elapsed);
            assert_eq!(serde_json::to_string(&ms).unwrap(), written, "{elapsed:?}");
            assert_eq!(ms.to_string(), written.trim_end_matches(".0"), "{elapsed:?} in a compact line");
        }
    }

    #[test]
    fn a_json_line_has_the_keys_of_the_event_it_replaces_in_order() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_764_877_674_418_515);
        let line = AccessLine {
            timestamp: at,
            level: "INFO",
            message: "request",
            method: "PUT",
            path: "/tasks/\"4\"",
            status: 200,
            upstream_status: 201,
            duration_ms: 1.5,
            request_id: "r-1",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            decision: "allow",
            reason: "ok",
            user_id: 7,
            error: "",
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"timestamp":"2025-12-04T19:47:54.418515Z","level":"INFO","message":"request","method":"PUT","path":"/tasks/\"4\"","status":200,"upstream_status":201,"duration_ms":1.5,"request_id":"r-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","decision":"allow","reason":"ok","user_id":7,"error":""}"#
        );
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused_naming_the_key() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = AccessLogSettings::try_from(&AccessLogSection { successes: bad, slow_ms: 0 }).unwrap_err();
            assert_eq!(e.key, "[access_log] successes", "{bad}");
        }
        let e = AccessLogSettings::try_from(&AccessLogSection { successes: 0.5, slow_ms: 3_600_001 }).unwrap_err();
        assert_eq!(e.key, "[access_log] slow_ms");
    }
}
