//! What the gateway decides about a request: the identity to forward, a rejection (401), or
//! "cannot decide now" (503).

use std::sync::Arc;

use http::HeaderValue;
use platform::keyring::{Claims, Rejection};

/// A verified identity, with its header values already validated so forwarding cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub user_id_header: HeaderValue,
    pub username: HeaderValue,
    pub email: HeaderValue,
    /// The token's `exp` (unix seconds): the identity is never used after it.
    pub exp: i64,
}

impl Identity {
    /// `None` when the claims cannot be forwarded as headers (a non-positive id, or control
    /// characters in a name): such a token is treated as malformed.
    pub fn from_claims(claims: &Claims) -> Option<Self> {
        if claims.user_id <= 0 {
            return None;
        }
        Some(Self {
            user_id: claims.user_id,
            user_id_header: HeaderValue::from_str(&claims.user_id.to_string()).ok()?,
            username: HeaderValue::from_str(&claims.username).ok()?,
            email: HeaderValue::from_str(&claims.email).ok()?,
            exp: claims.exp,
        })
    }

    pub fn is_expired_at(&self, now: i64) -> bool {
        now >= self.exp
    }
}

/// Why the gateway could not decide; all of these become 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No keyring loaded yet (Secrets Manager not read yet).
    NoKeyring,
    /// auth-svc unreachable, failing, or slower than the deadline.
    AuthUnavailable,
    /// The global fallback rate limit is exhausted.
    RateLimited,
}

impl Unavailable {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoKeyring => "no_keyring",
            Self::AuthUnavailable => "auth_unavailable",
            Self::RateLimited => "rate_limited",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Arc<Identity>),
    Deny(Rejection),
    Unavailable(Unavailable),
}

impl Decision {
    /// `(result, reason)` metric labels.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Self::Allow(_) => ("allow", "ok"),
            Self::Deny(r) => ("deny", r.reason()),
            Self::Unavailable(u) => ("unavailable", u.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_with_unforwardable_values_are_refused() {
        let mut c = Claims::new(5, "alice", "a@example.com", 0, 60);
        let id = Identity::from_claims(&c).unwrap();
        assert_eq!(id.user_id_header, "5");
        c.username = "bad\nname".into();
        assert!(Identity::from_claims(&c).is_none());
        let c = Claims::new(0, "alice", "a@example.com", 0, 60);
        assert!(Identity::from_claims(&c).is_none());
    }
}
