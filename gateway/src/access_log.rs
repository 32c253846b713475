//! `[access_log]`: which requests get an access line. Every refusal, error and request whose
//! trace is sampled gets one; of the successful rest (status below 400), the share
//! `successes` (0..=1, default 1: every request). Formatting and writing the line is about 13%
//! of the gateway's instructions per request (docs/benchmarks.md), so a fleet that logs only
//! what an operator reads (failures) and a sample to see the traffic can lower `successes`; the
//! metrics count every request either way.

use opentelemetry::trace::TraceId;
use platform::config::ConfigError;

use crate::config::AccessLogSection;

/// `[access_log]`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccessLogSettings {
    /// The share of successful requests given a line, 0..=1.
    pub successes: f64,
}

impl TryFrom<&AccessLogSection> for AccessLogSettings {
    type Error = ConfigError;

    fn try_from(s: &AccessLogSection) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&s.successes) {
            return Err(ConfigError::new("[access_log] successes", format!("{} is out of range 0..=1", s.successes)));
        }
        Ok(Self { successes: s.successes })
    }
}

impl AccessLogSettings {
    /// Whether the request answered `status` (0: no response was written) in the trace
    /// `trace_id` (`sampled`: the trace is sampled) gets an access line. The share of successes
    /// is taken on the trace id's random low 64 bits, as a trace-id-ratio sampler does: a
    /// request's line does not depend on which gateway answered it, and ids chosen by a client
    /// choose only whether their own successes are logged.
    pub fn logs(&self, status: u16, trace_id: TraceId, sampled: bool) -> bool {
        if status == 0 || status >= 400 || sampled || self.successes >= 1.0 {
            return true;
        }
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or([0; 8]));
        // `as` saturates: 1.0 would overflow, and is answered above.
        (low as f64) < self.successes * (u64::MAX as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(successes: f64) -> AccessLogSettings {
        AccessLogSettings::try_from(&AccessLogSection { successes }).unwrap_or_else(|e| panic!("{e}"))
    }

    fn id(low: u64) -> TraceId {
        TraceId::from((0x6b11_a173_u128 << 96) | u128::from(low))
    }

    #[test]
    fn refusals_errors_and_sampled_traces_are_always_logged() {
        let none = settings(0.0);
        for status in [0, 400, 401, 403, 404, 429, 431, 500, 502, 503, 504] {
            assert!(none.logs(status, id(u64::MAX), false), "{status}");
        }
        assert!(none.logs(200, id(u64::MAX), true), "a sampled trace's success");
        assert!(!none.logs(200, id(0), false));
        assert!(!none.logs(304, id(0), false));
        assert!(settings(1.0).logs(200, id(u64::MAX), false));
    }

    #[test]
    fn the_share_of_successes_follows_the_trace_id() {
        let tenth = settings(0.1);
        assert!(tenth.logs(200, id(0), false));
        assert!(!tenth.logs(200, id(u64::MAX / 2), false));
        let logged =
            (0..10_000u64).filter(|i| tenth.logs(200, id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), false)).count();
        assert!((800..1200).contains(&logged), "{logged} of 10000 at 0.1");
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused_naming_the_key() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = AccessLogSettings::try_from(&AccessLogSection { successes: bad }).unwrap_err();
            assert_eq!(e.key, "[access_log] successes", "{bad}");
        }
    }
}
