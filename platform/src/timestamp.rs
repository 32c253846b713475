//! Timestamps in responses: RFC 3339, UTC, millisecond precision (`2024-01-15T00:00:00.000Z`),
//! as the original API printed them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn format(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(ts))
}

pub fn serialize_option<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.serialize_str(&format(ts)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_the_original_api() {
        let ts = chrono::DateTime::parse_from_rfc3339("2024-01-15T00:00:00Z").unwrap().to_utc();
        assert_eq!(super::format(&ts), "2024-01-15T00:00:00.000Z");
    }
}
