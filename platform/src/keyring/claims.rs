//! The claims of this system's tokens and the lifetime rules every verifier applies.

use serde::{Deserialize, Serialize};

use super::Rejection;
use super::scope::{LOGIN_SCOPE, ScopeSet};

/// `iss` of every token auth-svc issues.
pub const ISSUER: &str = "task-mgmt-auth";
/// `aud` of every token auth-svc issues.
pub const AUDIENCE: &str = "task-mgmt-api";
/// Default clock leeway for `exp`, `nbf` and `iat`, seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;
/// Default maximum token lifetime (`exp - iat`), seconds: the largest `JWT_EXPIRATION` auth-svc
/// accepts (7 days).
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// The token's claims (RFC 7519 §4.1 registered claims plus the original system's `user_id`,
/// `username` and `email`). Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    pub sub: String,
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// Unique token id (32 lowercase hex digits from auth-svc); what logout revokes.
    pub jti: String,
    /// What the token may do: space-separated scopes (RFC 8693 §4.2), see [`super::scope`].
    /// Login tokens carry [`LOGIN_SCOPE`]; absent in tokens issued before scopes existed, which
    /// verifiers read as every scope ([`ScopeSet::from_claim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The API key's `client_id` when the token came from the client credentials grant
    /// (RFC 6749 §4.4; the claim of RFC 9068 §2.2); absent in login tokens. Revoking the key
    /// revokes every token naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    /// Claims for a login token issued `now` (unix seconds) that lives `lifetime_secs`, with
    /// every scope ([`LOGIN_SCOPE`]) and no `client_id`.
    pub fn new(user_id: i64, username: &str, email: &str, now: i64, lifetime_secs: i64) -> Self {
        Self {
            sub: user_id.to_string(),
            user_id,
            username: username.to_owned(),
            email: email.to_owned(),
            iat: now,
            nbf: now,
            exp: now + lifetime_secs,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope: Some(LOGIN_SCOPE.to_owned()),
            client_id: None,
        }
    }

    /// The identity rules every verifier applies after the signature, so auth-svc's
    /// `/auth/validate` and the gateway accept the same tokens: `user_id` is positive and `sub`
    /// is its decimal form, and `username` and `email` are non-empty and visible ASCII and space
    /// only (RFC 9110 §5.5 field values without obs-text: every name and email auth-svc's
    /// registration admits passes, and a token carrying anything else was not made by it).
    /// Anything else is [`Rejection::Malformed`].
    pub fn check_identity(&self) -> Result<(), Rejection> {
        let forwardable = |v: &str| !v.is_empty() && v.bytes().all(|b| (0x20..=0x7e).contains(&b));
        let ok = self.user_id > 0
            && self.sub == self.user_id.to_string()
            && forwardable(&self.username)
            && forwardable(&self.email);
        if ok { Ok(()) } else { Err(Rejection::Malformed) }
    }

    /// The scopes the token grants ([`ScopeSet::from_claim`]).
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::from_claim(self.scope.as_deref())
    }
}

/// The time rules of verification beyond the signature: the clock leeway for `exp`, `nbf` and
/// `iat`, and the longest lifetime a token may claim. One definition, used by auth-svc's
/// `/auth/validate` and by the gateway, so both refuse the same tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRules {
    /// Clock skew tolerated, seconds.
    pub leeway_secs: u64,
    /// Largest `exp - iat` accepted, seconds.
    pub max_lifetime_secs: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self { leeway_secs: DEFAULT_LEEWAY_SECS, max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS }
    }
}

impl TokenRules {
    /// Checks `iat` and the lifetime of already signature-checked claims at `now` (unix
    /// seconds). `exp`/`nbf` are checked by the JWT library with the same leeway.
    pub fn check_times(&self, claims: &Claims, now: i64) -> Result<(), Rejection> {
        let leeway = i64::try_from(self.leeway_secs).unwrap_or(i64::MAX);
        if claims.iat > now.saturating_add(leeway) {
            return Err(Rejection::IssuedInFuture);
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime < 0 || lifetime as u64 > self.max_lifetime_secs {
            return Err(Rejection::LifetimeTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iat_in_the_future_beyond_the_leeway_is_refused() {
        let rules = TokenRules { leeway_secs: 5, max_lifetime_secs: 3600 };
        let now = 1_000_000;
        let mut c = Claims::new(1, "u", "e@x.io", now + 5, 60);
        assert_eq!(rules.check_times(&c, now), Ok(()));
        c = Claims::new(1, "u", "e@x.io", now + 6, 60);
        assert_eq!(rules.check_times(&c, now), Err(Rejection::IssuedInFuture));
        c = Claims::new(1, "u", "e@x.io", now + 365 * 86400, 60);
        assert_eq!(rules.check_times(&c, now), Err(Rejection::IssuedInFuture));
    }

    #[test]
    fn identities_that_cannot_be_forwarded_or_disagree_are_malformed() {
        let good = Claims::new(7, "alice", "a@example.com", 0, 60);
        assert_eq!(good.check_identity(), Ok(()));
        let bad: [fn(&mut Claims); 8] = [
            |c| c.user_id = 0,
            |c| {
                c.user_id = -5;
                c.sub = "-5".into();
            },
            |c| c.sub = "8".into(),
            |c| c.sub = "07".into(),
            |c| c.username = "al\r\nX-User-Id: 1".into(),
            |c| c.username = String::new(),
            |c| c.email = "a\u{7f}@example.com".into(),
            |c| c.username = "jos\u{e9}".into(),
        ];
        for (i, spoil) in bad.into_iter().enumerate() {
            let mut c = good.clone();
            spoil(&mut c);
            assert_eq!(c.check_identity(), Err(Rejection::Malformed), "case {i}: {c:?}");
        }
    }

    #[test]
    fn lifetime_beyond_the_maximum_is_refused() {
        let rules = TokenRules { leeway_secs: 5, max_lifetime_secs: 3600 };
        let now = 1_000_000;
        assert_eq!(rules.check_times(&Claims::new(1, "u", "e@x.io", now, 3600), now), Ok(()));
        assert_eq!(rules.check_times(&Claims::new(1, "u", "e@x.io", now, 3601), now), Err(Rejection::LifetimeTooLong));
        let mut c = Claims::new(1, "u", "e@x.io", now, 60);
        c.exp = c.iat - 1;
        assert_eq!(rules.check_times(&c, now), Err(Rejection::LifetimeTooLong));
        let rules = TokenRules::default();
        assert_eq!(
            rules.check_times(&Claims::new(1, "u", "e@x.io", now, 30 * 86400), now),
            Err(Rejection::LifetimeTooLong)
        );
    }
}
