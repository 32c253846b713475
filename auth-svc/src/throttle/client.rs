//! The per-client limit: requests to the hashing endpoints per source address, kept in this
//! task's memory (a GCRA bucket per address, `governor`'s keyed rate limiter).
//!
//! The source is the address the ALB appends to `X-Forwarded-For`, i.e. the header's LAST entry
//! ("the ALB appends the client IP to the existing header", AWS ELB docs, "X-Forwarded-For").
//! Earlier entries are whatever the client sent and are never used. Without the header the TCP
//! peer (axum `ConnectInfo`) is the source. This trusts the last entry only because auth-svc's
//! security group admits nothing but the ALB and the gateways.

use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::HeaderMap;
use http::request::Parts;

use super::config::ClientQuota;

/// A request's source address as used for the per-client limit: IPv4, or the /64 network of an
/// IPv6 address (one subscriber usually holds a whole /64, so single v6 addresses are free to
/// vary). `None` only for requests that did not arrive over a socket (in-process callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(client_address(&parts.headers, peer)))
    }
}

/// The last `X-Forwarded-For` entry when it is an address, else `peer`; normalised (see
/// [`ClientAddress`]). Several header lines are one list in order (RFC 9110 5.3), so the last
/// entry of the last line is the last hop.
pub fn client_address(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|line| line.to_str().ok())
        .and_then(|line| line.rsplit(',').next())
        .and_then(|entry| parse_entry(entry.trim()));
    forwarded.or(peer).map(normalise)
}

/// An entry is an address, possibly with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn normalise(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

/// One GCRA bucket per key (`governor`'s keyed rate limiter): per source address for the
/// hashing endpoints ([`ClientLimiter`]), per account for logout. Buckets of quiet keys are
/// dropped by [`KeyedLimiter::retain_recent`] (called periodically), so memory follows the
/// number of keys active within one replenish period, not every key ever seen.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<C::Instant>>,
}

/// The per-source limit of the hashing endpoints.
pub type ClientLimiter<C = DefaultClock> = KeyedLimiter<IpAddr, C>;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(quota: ClientQuota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// A limiter reading time from `clock` (a fake clock in tests).
    pub fn with_clock(quota: ClientQuota, clock: C) -> Self {
        let quota = Quota::per_minute(quota.per_minute).allow_burst(quota.burst);
        Self { limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock) }
    }

    /// Takes one request from `key`'s bucket; `Err` carries how long until one is available.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets keys whose bucket is full again (indistinguishable from a new key).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use http::HeaderValue;
    use std::num::NonZeroU32;

    fn quota(per_minute: u32, burst: u32) -> Option<ClientQuota> {
        Some(ClientQuota { per_minute: NonZeroU32::new(per_minute)?, burst: NonZeroU32::new(burst)? })
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        h
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)));

    #[test]
    fn the_last_forwarded_entry_is_the_source() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_address(&headers(&["198.51.100.1, 203.0.113.7"]), PEER), ip("203.0.113.7"));
        assert_eq!(client_address(&headers(&["198.51.100.1", "203.0.113.8"]), PEER), ip("203.0.113.8"));
        assert_eq!(client_address(&headers(&["203.0.113.9:4711"]), PEER), ip("203.0.113.9"));
        assert_eq!(client_address(&headers(&["[2001:db8::1]:4711"]), PEER), ip("2001:db8::"));
        assert_eq!(client_address(&headers(&["::ffff:203.0.113.10"]), PEER), ip("203.0.113.10"));
    }

    #[test]
    fn client_supplied_entries_do_not_change_the_source() {
        let a = client_address(&headers(&["1.1.1.1, 203.0.113.7"]), PEER);
        let b = client_address(&headers(&["2.2.2.2, 3.3.3.3, 203.0.113.7"]), PEER);
        assert_eq!(a, b);
    }

    #[test]
    fn without_a_usable_header_the_peer_is_the_source() {
        assert_eq!(client_address(&HeaderMap::new(), PEER), PEER);
        assert_eq!(client_address(&headers(&["203.0.113.7, not-an-address"]), PEER), PEER);
        assert_eq!(client_address(&headers(&["203.0.113.7,"]), PEER), PEER);
        assert_eq!(client_address(&HeaderMap::new(), None), None);
    }

    #[test]
    fn ipv6_sources_are_their_64_bit_network() {
        let a = client_address(&headers(&["2001:db8:1:2::1"]), None);
        let b = client_address(&headers(&["2001:db8:1:2:ffff:ffff:ffff:ffff"]), None);
        let other = client_address(&headers(&["2001:db8:1:3::1"]), None);
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn a_source_gets_its_burst_then_waits_for_the_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = ClientLimiter::with_clock(quota(30, 3).unwrap(), clock.clone());
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.7".parse().unwrap(), "203.0.113.8".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2), "30 a minute: one every 2 s");
        assert!(limiter.check(b).is_ok(), "another source has its own bucket");
        clock.advance(Duration::from_secs(2));
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_err());
    }

    #[test]
    fn quiet_sources_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limiter = ClientLimiter::with_clock(quota(60, 2).unwrap(), clock.clone());
        for i in 0..100u8 {
            let _ = limiter.check(IpAddr::from([203, 0, 113, i]));
        }
        assert_eq!(limiter.len(), 100);
        clock.advance(Duration::from_secs(3));
        limiter.retain_recent();
        assert!(limiter.is_empty(), "{} left", limiter.len());
    }
}
