//! The HTTP client to auth-svc, shared by the fallback and the revocation poller. auth-svc is a
//! Cloud Map name; addresses come from [`crate::resolver`] (re-resolved in the background,
//! shuffled per call) and idle connections are not kept, so consecutive calls spread over the
//! auth-svc tasks instead of sticking to the first address: during a rolling deploy one task's
//! answer is not the only one the gateway ever hears.

use std::sync::Arc;
use std::time::Duration;

use crate::resolver::{AuthResolver, ClientResolver};

/// Largest auth-svc answer read for a validate call; ours are well under 1 KiB.
pub const MAX_VALIDATE_REPLY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct AuthClient {
    pub http: reqwest::Client,
    /// `http://host:port` of auth-svc, no trailing slash.
    pub base_url: String,
}

impl AuthClient {
    /// A client whose every request is bounded by `deadline` (connect included).
    pub fn new(base_url: &str, resolver: Arc<AuthResolver>, deadline: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(ClientResolver(resolver)))
            .connect_timeout(deadline)
            .timeout(deadline)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned() })
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
