//! What the gateway decides about a request's credential: one type, [`Decision`], from the
//! cache, the local verification, the auth-svc fallback and the revocation check alike.

use std::sync::Arc;

use http::HeaderValue;
use platform::keyring::{Claims, Rejection, ScopeSet};
use sha2::{Digest, Sha256};

/// A `jti` (or an API key's `client_id`) as the revocation list keys it: the first 16 bytes of
/// SHA-256 of the claim, so every value (ours are 32 hex digits, a forged one can be anything)
/// has one fixed size.
pub type JtiKey = [u8; 16];

/// The [`JtiKey`] of a `jti` claim.
pub fn jti_key(jti: &str) -> JtiKey {
    let digest = Sha256::digest(jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// A verified identity: the user id task-svc is given (its header value made once, when the
/// token is first decided), and what the revocation check and a keyring change need to know
/// about its token. The token's `username` and `email` are not kept: task-svc has no use for
/// them, so they are not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    /// `user_id` in decimal, the value of `x-user-id`.
    pub user_id_header: HeaderValue,
    /// The token's `exp` (unix seconds): the identity is never used after it.
    pub exp: i64,
    /// The token's `iat` (unix seconds), for per-user revocation cut-offs.
    pub iat: i64,
    pub jti: JtiKey,
    /// What the token may do (its `scope` claim).
    pub scopes: ScopeSet,
    /// The [`jti_key`] of the token's `client_id` claim: the API key it was issued to (client
    /// credentials grant); `None` for a login token. Revoking the key revokes the token.
    pub client: Option<JtiKey>,
    /// The key id that verified the token here; `None` when auth-svc vouched for it (fallback).
    /// A cached identity whose key has left the keyring is not served again.
    pub local_kid: Option<Box<str>>,
}

impl Identity {
    /// `None` for a non-positive user id: such a token is treated as malformed.
    pub fn from_claims(claims: &Claims, local_kid: Option<&str>) -> Option<Self> {
        if claims.user_id <= 0 {
            return None;
        }
        Some(Self {
            user_id: claims.user_id,
            user_id_header: HeaderValue::from(claims.user_id),
            exp: claims.exp,
            iat: claims.iat,
            jti: jti_key(&claims.jti),
            scopes: claims.scopes(),
            client: claims.client_id.as_deref().map(jti_key),
            local_kid: local_kid.map(Box::from),
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
    /// An unknown key id, auth-svc does not know it either, but our own keyring has not been
    /// re-read since the key id was first seen: one auth-svc task is not proof.
    KeyringPending,
    /// The revocation list is older than `[revocation] max_age_secs`.
    RevocationListStale,
    /// No revocation list has been pulled yet: a revoked token cannot be told from a good one.
    RevocationPending,
}

impl Unavailable {
    /// Every kind, for metrics that must exist at 0 before the first one happens.
    pub const ALL: [Unavailable; 6] = [
        Self::NoKeyring,
        Self::AuthUnavailable,
        Self::RateLimited,
        Self::KeyringPending,
        Self::RevocationListStale,
        Self::RevocationPending,
    ];

    /// The `reason` of the 503 this gives (the request's and `/ready`'s JSON body) and its
    /// metric label, e.g. `no_keyring`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoKeyring => "no_keyring",
            Self::AuthUnavailable => "auth_unavailable",
            Self::RateLimited => "rate_limited",
            Self::KeyringPending => "keyring_pending",
            Self::RevocationListStale => "revocation_stale",
            Self::RevocationPending => "revocation_pending",
        }
    }
}

/// The answer for one credential. The token cache stores only `Allow` and `Deny`.
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

    /// Whether this is a final answer that may be cached (not "cannot decide now").
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }

    /// The identity of a `Allow` decided from the claims (malformed when not forwardable).
    pub fn from_claims(claims: &Claims, local_kid: Option<&str>) -> Self {
        match Identity::from_claims(claims, local_kid) {
            Some(id) => Self::Allow(Arc::new(id)),
            None => Self::Deny(Rejection::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_carry_the_user_id_header_and_non_positive_ids_are_refused() {
        let mut c = Claims::new(5, "alice", "a@example.com", 0, 60);
        let id = Identity::from_claims(&c, Some("k")).unwrap();
        assert_eq!(id.user_id_header, "5");
        assert_eq!(id.jti, jti_key(&c.jti));
        // The name is not forwarded, so this type does not look at it (the keyring's
        // `Claims::check_identity` refuses such a token before it gets here).
        c.username = "bad\nname".into();
        assert_eq!(Identity::from_claims(&c, None).map(|id| id.user_id), Some(5));
        c.user_id = -5;
        assert!(Identity::from_claims(&c, None).is_none());
        let c = Claims::new(0, "alice", "a@example.com", 0, 60);
        assert_eq!(Decision::from_claims(&c, None), Decision::Deny(Rejection::Malformed));
    }
}
