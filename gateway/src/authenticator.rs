//! The decision for one request's credential: cache, then local verification, then (only for
//! a key id the gateway does not hold) auth-svc.

use std::sync::Arc;

use platform::keyring::{Rejection, bearer_token, token_kid};

use crate::decision::{Decision, Identity, Unavailable};
use crate::fallback::Fallback;
use crate::keyring_source::KeyringStore;
use crate::metrics::Metrics;
use crate::token_cache::{Cached, TokenCache, token_key};

pub struct Authenticator {
    pub keyring: Arc<KeyringStore>,
    pub cache: TokenCache,
    pub fallback: Fallback,
    pub leeway_secs: u64,
    pub metrics: Metrics,
}

/// Extracts the one bearer token from all `Authorization` values of a request. Zero values is
/// `missing`; more than one is `malformed` (exactly one credential per request).
pub fn credential<'a>(values: &[&'a [u8]]) -> Result<&'a str, Rejection> {
    match values {
        [] => Err(Rejection::Missing),
        [one] => {
            // The size cap applies before any decoding.
            if one.len() > platform::keyring::MAX_TOKEN_BYTES + 16 {
                return Err(Rejection::TooLarge);
            }
            let text = std::str::from_utf8(one).map_err(|_| Rejection::Malformed)?;
            bearer_token(text)
        }
        _ => Err(Rejection::Malformed),
    }
}

impl Authenticator {
    pub async fn authenticate(&self, token: &str) -> Decision {
        let key = token_key(token);
        if self.cache.is_enabled() {
            if let Some(hit) = self.cache.get(&key).await {
                self.metrics.cache_lookups.with_label_values(&["hit"]).inc();
                return from_cached(hit);
            }
            self.metrics.cache_lookups.with_label_values(&["miss"]).inc();
        }
        match self.decide(key, token).await {
            Ok(cached) => {
                self.cache.insert(key, cached.clone()).await;
                from_cached(cached)
            }
            Err(u) => Decision::Unavailable(u),
        }
    }

    async fn decide(&self, key: [u8; 32], token: &str) -> Result<Cached, Unavailable> {
        let ring = self.keyring.current().ok_or(Unavailable::NoKeyring)?;
        match ring.verify(token, self.leeway_secs) {
            Ok(claims) => Ok(match Identity::from_claims(&claims) {
                Some(id) => Cached::Allow(Arc::new(id)),
                None => Cached::Deny(Rejection::Malformed),
            }),
            Err(Rejection::UnknownKid) => {
                // verify() read the kid already; read it again to hand it on.
                let kid = token_kid(token).map_err(|_| Unavailable::AuthUnavailable)?;
                self.fallback.validate(key, token, &kid).await
            }
            Err(r) => Ok(Cached::Deny(r)),
        }
    }
}

fn from_cached(c: Cached) -> Decision {
    match c {
        Cached::Allow(id) => Decision::Allow(id),
        Cached::Deny(r) => Decision::Deny(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_credential() {
        assert_eq!(credential(&[]), Err(Rejection::Missing));
        assert_eq!(credential(&[b"Bearer a.b.c"]), Ok("a.b.c"));
        assert_eq!(credential(&[b"Bearer a.b.c", b"Bearer a.b.c"]), Err(Rejection::Malformed));
        assert_eq!(credential(&[b"Bearer \xff"]), Err(Rejection::Malformed));
        let huge = format!("Bearer {}", "a".repeat(10_000));
        assert_eq!(credential(&[huge.as_bytes()]), Err(Rejection::TooLarge));
    }
}
