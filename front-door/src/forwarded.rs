//! The header changes the ALB makes on the way to a target, and hop-by-hop headers.
//!
//! AWS, "HTTP headers and Application Load Balancers": `X-Forwarded-For` gets the client's
//! address appended (created when absent), `X-Forwarded-Proto` and `X-Forwarded-Port` say how
//! the client reached the load balancer. "Request tracing for your Application Load Balancer":
//! `X-Amzn-Trace-Id: Root=1-<8 hex digits of epoch seconds>-<24 hex digits>` is added when
//! absent; a present header with a `Root` gets a `Self` field of the same form. The load
//! balancer attribute `routing.http.drop_invalid_header_fields.enabled` (true in our
//! CloudFormation) removes header fields whose names do not match `[-A-Za-z0-9]+`.

use std::net::SocketAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

/// Removes the hop-by-hop headers ([`platform::http::HOP_BY_HOP`], RFC 9110 7.6.1), including
/// any the `Connection` header names. `Transfer-Encoding` goes too: the body is re-framed for the
/// next hop.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in platform::http::HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Removes header fields whose names the ALB drops (`drop_invalid_header_fields`): anything
/// but letters, digits and `-`, e.g. `X_User_Id`.
pub fn drop_invalid_names(headers: &mut HeaderMap) {
    let invalid: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !name.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .cloned()
        .collect();
    for name in invalid {
        headers.remove(name);
    }
}

/// What the ALB adds: the client address appended to `X-Forwarded-For`, the scheme and the
/// listener port the client connected to.
pub fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr, listener_port: u16) {
    let ip = client.ip().to_string();
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .collect();
    let xff = if prior.is_empty() { ip } else { format!("{}, {ip}", prior.join(", ")) };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    headers.insert("x-forwarded-port", HeaderValue::from(listener_port));
}

/// One trace id: `1-<epoch seconds, 8 hex digits>-<96 random bits, 24 hex digits>`.
pub fn trace_id(epoch_secs: u64) -> String {
    let random: u128 = rand::thread_rng().r#gen::<u128>() >> 32;
    format!("1-{:08x}-{random:024x}", epoch_secs & 0xffff_ffff)
}

/// Adds `X-Amzn-Trace-Id: Root=...` when absent; with a `Root` present, sets `Self=...` in
/// front of the other fields, as the ALB does.
pub fn add_trace_id(headers: &mut HeaderMap, epoch_secs: u64) {
    let id = trace_id(epoch_secs);
    let value = match headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()) {
        Some(existing) if existing.split(';').any(|f| f.trim().starts_with("Root=")) => {
            let others: Vec<&str> =
                existing.split(';').map(str::trim).filter(|f| !f.is_empty() && !f.starts_with("Self=")).collect();
            format!("Self={id};{}", others.join(";"))
        }
        _ => format!("Root={id}"),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert("x-amzn-trace-id", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("authorization"));
    }

    #[test]
    fn forwarded_headers_are_appended_and_set() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        add_forwarded(&mut h, SocketAddr::from(([127, 0, 0, 1], 5000)), 8080);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http", "the client's value is replaced");
        assert_eq!(h["x-forwarded-port"], "8080");
    }

    #[test]
    fn invalid_header_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x_user_id", HeaderValue::from_static("1"));
        h.insert("x.dotted", HeaderValue::from_static("1"));
        h.insert("x-user-id", HeaderValue::from_static("2"));
        drop_invalid_names(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-user-id"], "2");
    }

    #[test]
    fn trace_ids_have_the_alb_format() {
        let mut h = HeaderMap::new();
        add_trace_id(&mut h, 0x6789_1233);
        let v = h["x-amzn-trace-id"].to_str().unwrap_or_default().to_owned();
        let id = v.strip_prefix("Root=1-67891233-").unwrap_or_default();
        assert_eq!(id.len(), 24, "{v}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");

        let mut h = HeaderMap::new();
        h.insert(
            "x-amzn-trace-id",
            HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app"),
        );
        add_trace_id(&mut h, 0x6789_1234);
        let v = h["x-amzn-trace-id"].to_str().unwrap_or_default();
        assert!(v.starts_with("Self=1-67891234-"), "{v}");
        assert!(v.ends_with(";Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app"), "{v}");
    }
}
