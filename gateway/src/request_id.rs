//! The request id every request carries (`X-Request-Id`): the client's when it sent one usable
//! id (the stack's one rule, [`platform::http::client_request_id`]: a sane token, not
//! repeated), else one the gateway makes. Forwarded to task-svc and returned on every response.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

pub use platform::http::REQUEST_ID;

/// The request's id: the client's when `headers` carry one usable `X-Request-Id`
/// ([`platform::http::client_request_id`]), else a fresh one from `ids`. The services and the
/// front door apply the same rule, so a request keeps one id through the stack.
pub fn request_id(headers: &http::HeaderMap, ids: &RequestIds) -> HeaderValue {
    platform::http::client_request_id(headers).cloned().unwrap_or_else(|| ids.next())
}

/// Request ids for requests that come without a usable one: UUID-shaped (8-4-4-4-12 hex), the
/// first four groups random once per process (a version 4 UUID's), the last a counter. Unique
/// per process by the counter (2^48 ids) and across processes by the 74 random bits, without a
/// random-number system call per request.
pub struct RequestIds {
    prefix: [u8; 24],
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let mut prefix = [0u8; 24];
        let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
        prefix.copy_from_slice(&uuid.as_bytes()[..24]);
        Self { prefix, next: AtomicU64::new(0) }
    }

    /// The next id, e.g. `3f2a9c1e-7b4d-4e2f-9a1c-00000000002a`.
    pub fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 36];
        id[..24].copy_from_slice(&self.prefix);
        for (i, slot) in id[24..].iter_mut().enumerate() {
            *slot = HEX[((n >> (4 * (11 - i))) & 0xf) as usize];
        }
        // Hex digits and hyphens are always a valid header value.
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_single_and_created_otherwise() {
        let headers = |values: &[&'static str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(REQUEST_ID, HeaderValue::from_static(v));
            }
            h
        };
        let ids = RequestIds::new();
        assert_eq!(request_id(&headers(&["abc-123"]), &ids), "abc-123");
        assert_ne!(request_id(&headers(&["has space"]), &ids), "has space");
        // Repeated: neither is the request's id (the services refuse both as well).
        let repeated = request_id(&headers(&["abc-123", "def-456"]), &ids);
        assert!(repeated != "abc-123" && repeated != "def-456", "{repeated:?}");
        assert_eq!(repeated.len(), 36);
        assert_eq!(request_id(&headers(&[]), &ids).len(), 36);
    }

    #[test]
    fn generated_request_ids_are_uuid_shaped_and_unique_within_and_across_processes() {
        let ids = RequestIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            let text = id.to_str().unwrap().to_owned();
            assert!(uuid::Uuid::parse_str(&text).is_ok(), "{text}");
            assert!(seen.insert(text));
        }
        assert!(ids.next().to_str().unwrap().ends_with("000000002710"), "the counter is the last group");
        // Another process (here: another generator) draws another random prefix.
        let other = RequestIds::new().next();
        assert_ne!(&other.as_bytes()[..24], &ids.next().as_bytes()[..24]);
    }
}
