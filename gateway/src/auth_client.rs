//! The HTTP client to auth-svc, shared by the fallback and the revocation poller. auth-svc is a
//! Cloud Map name; addresses come from [`crate::resolver`] (re-resolved in the background,
//! shuffled per call) and idle connections are not kept, so consecutive calls spread over the
//! auth-svc tasks instead of sticking to the first address: during a rolling deploy one task's
//! answer is not the only one the gateway ever hears.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use platform::config::ConfigError;

use crate::config::file::AuthSection;
use crate::config::values::{at_least_one, in_range, millis, secs};
use crate::resolver::{AuthResolver, ClientResolver};

/// Largest auth-svc answer read for a validate call; ours are well under 1 KiB.
pub const MAX_VALIDATE_REPLY_BYTES: usize = 16 * 1024;

/// `[auth]`, validated: where auth-svc is and how the gateway calls it. The fallback
/// ([`crate::fallback`]) uses the deadline and the rate limit, the revocation poller the origin,
/// every 503 the gateway answers carries `retry_after_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub origin: AuthOrigin,
    /// How often the origin's host name is re-resolved.
    pub resolve_interval: Duration,
    /// Deadline of one call to auth-svc, connect included.
    pub deadline: Duration,
    /// Fallback calls per second (token bucket refill).
    pub rate_limit_per_sec: NonZeroU32,
    /// Fallback calls allowed at once above the rate (token bucket size).
    pub rate_limit_burst: NonZeroU32,
    /// `Retry-After` of every 503, seconds.
    pub retry_after_secs: u64,
}

impl TryFrom<&AuthSection> for AuthSettings {
    type Error = ConfigError;

    fn try_from(s: &AuthSection) -> Result<Self, ConfigError> {
        Ok(Self {
            origin: AuthOrigin::parse(&s.url).map_err(|e| ConfigError::new("[auth] url", e))?,
            resolve_interval: secs("[auth] resolve_interval_secs", s.resolve_interval_secs, 1..=3600)?,
            deadline: millis("[auth] deadline_ms", s.deadline_ms, 10..=30_000)?,
            rate_limit_per_sec: at_least_one("[auth] rate_limit_per_sec", s.rate_limit_per_sec)?,
            rate_limit_burst: at_least_one("[auth] rate_limit_burst", s.rate_limit_burst)?,
            retry_after_secs: in_range("[auth] retry_after_secs", s.retry_after_secs, 1..=300)?,
        })
    }
}

/// auth-svc's origin, `http://host[:port]` (a trailing `/` is allowed): plain HTTP only, since
/// auth-svc is reached inside the VPC; no user info, path or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOrigin {
    /// `http://host:port`, no trailing slash: what request paths are appended to.
    pub url: String,
    /// The host name or IP literal (IPv6 without brackets), for [`AuthResolver`].
    pub host: String,
    /// The port, 80 when the URL names none.
    pub port: u16,
}

impl AuthOrigin {
    /// Parses `url` (RFC 3986 via [`http::Uri`]); the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?} must start with http://"));
        }
        let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
        let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        if !bare || authority.as_str().contains('@') {
            return Err(format!("{url:?} must be a bare origin, e.g. http://host:3000"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        // `Uri` leaves a port that is not a number to the caller: check what follows the host.
        let port = match authority.as_str().strip_prefix(authority.host()).unwrap_or_default() {
            "" => 80,
            rest => {
                rest.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(|| format!("invalid port in {url:?}"))?
            }
        };
        let url = if host.contains(':') { format!("http://[{host}]:{port}") } else { format!("http://{host}:{port}") };
        Ok(Self { url, host: host.to_owned(), port })
    }
}

#[derive(Clone)]
pub struct AuthClient {
    pub http: reqwest::Client,
    /// `http://host:port` of auth-svc, no trailing slash.
    pub base_url: String,
}

impl AuthClient {
    /// A client of `settings.origin` whose every request is bounded by `settings.deadline`
    /// (connect included), with addresses from `resolver`.
    pub fn new(settings: &AuthSettings, resolver: Arc<AuthResolver>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(ClientResolver(resolver)))
            .connect_timeout(settings.deadline)
            .timeout(settings.deadline)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base_url: settings.origin.url.clone() })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// A reqwest error with its whole cause chain (reqwest's own message, "error sending request",
/// hides the cause), without the URL.
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_a_plain_http_origin() {
        let o = AuthOrigin::parse("http://auth.local").unwrap();
        assert_eq!((o.url.as_str(), o.host.as_str(), o.port), ("http://auth.local:80", "auth.local", 80));
        let o = AuthOrigin::parse(" http://127.0.0.1:4000/ ").unwrap();
        assert_eq!((o.url.as_str(), o.host.as_str(), o.port), ("http://127.0.0.1:4000", "127.0.0.1", 4000));
        let o = AuthOrigin::parse("http://[::1]:3000").unwrap();
        assert_eq!((o.url.as_str(), o.host.as_str(), o.port), ("http://[::1]:3000", "::1", 3000));
        for bad in [
            "https://x",
            "x:3000",
            "http://x/auth",
            "http://x?a=1",
            "http://u:p@x",
            "http://x:port",
            "http://x:70000",
            "http://",
            "",
        ] {
            assert!(AuthOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_keys_are_checked_naming_the_key() {
        let ok = AuthSettings::try_from(&AuthSection::default()).unwrap();
        assert_eq!((ok.origin.host.as_str(), ok.origin.port), ("auth-service.task-management.local", 3000));
        assert_eq!(ok.resolve_interval, Duration::from_secs(5));
        let bad = |edit: fn(&mut AuthSection)| {
            let mut s = AuthSection::default();
            edit(&mut s);
            AuthSettings::try_from(&s).unwrap_err().key
        };
        assert_eq!(bad(|s| s.url = "https://auth".into()), "[auth] url");
        assert_eq!(bad(|s| s.rate_limit_per_sec = 0), "[auth] rate_limit_per_sec");
        assert_eq!(bad(|s| s.rate_limit_burst = 0), "[auth] rate_limit_burst");
        assert_eq!(bad(|s| s.deadline_ms = 5), "[auth] deadline_ms");
    }
}
