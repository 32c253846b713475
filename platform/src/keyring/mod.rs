//! JWTs of this system: the claims, the key ids, and a keyring that issues and verifies tokens
//! (RFC 7519, RFC 7515) with the current key and, during a rotation, the previous ones; plus
//! where the keyring comes from and how it stays current ([`store`], [`secrets_manager`]).
//!
//! Signing modes ([`Alg`]): HS256 with a shared secret (every holder can sign), or RS256/EdDSA
//! with auth-svc's private key ([`PrivateKey`]) and, for everybody else, the public keys of its
//! JWKS ([`Jwks`]). Every key is pinned to one algorithm: a token's `alg` must be its key's.

mod alg;
mod asymmetric;
mod claims;
mod config;
mod header;
pub mod jwk;
pub mod jwks_source;
mod private_key;
mod rejection;
pub mod scope;
pub mod secrets_manager;
pub mod signing_key;
pub mod store;
mod token;

use std::fmt;

use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use sha2::Sha256;

pub use alg::{Alg, UnknownAlg};
pub use claims::{AUDIENCE, Claims, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_LIFETIME_SECS, ISSUER, TokenRules};
pub use config::{JWKS_PATH, KeyringConfig, read_alg};
pub use jwk::{JwkError, Jwks, PublicJwk};
pub use private_key::{PrivateKey, PrivateKeyError};
pub use rejection::Rejection;
pub use scope::{LOGIN_SCOPE, Scope, ScopeSet, TASKS_READ, TASKS_WRITE, UnknownScope};
pub use token::{MAX_KID_BYTES, MAX_TOKEN_BYTES, UnverifiedToken, bearer_token};

use crate::Secret;

/// Secrets shorter than this are refused at start-up.
pub const MIN_SECRET_BYTES: usize = 32;

/// A key id for `secret`: the first 16 hex digits of HMAC-SHA256(secret, "task-mgmt/kid/v1").
/// Every holder of the secret computes the same id; the id reveals nothing about the secret.
pub fn key_id(secret: &Secret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(b"task-mgmt/kid/v1");
    let digest = mac.finalize().into_bytes();
    hex::encode(&digest[..8])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("secret is {0} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort(usize),
}

/// One key, pinned to `alg`. `encoding` only on keys this process signs with; `public` only on
/// asymmetric keys (what the JWKS publishes).
struct Key {
    kid: String,
    alg: Alg,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    public: Option<PublicJwk>,
}

/// The keys a process verifies with, in order: the first one signs when the keyring can sign
/// (HS256 current secret, auth-svc's current private key); the others only verify (previous
/// secret, published public keys). Never empty.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("kids", &self.kids()).finish()
    }
}

impl Keyring {
    /// A keyring signing with `current`; `previous` (if any, and different) only verifies.
    /// Errors when a secret is shorter than [`MIN_SECRET_BYTES`].
    pub fn new(current: &Secret, previous: Option<&Secret>) -> Result<Self, KeyError> {
        let mut keys = vec![Self::key(current)?];
        if let Some(prev) = previous {
            let key = Self::key(prev)?;
            if key.kid != keys[0].kid {
                keys.push(key);
            }
        }
        Ok(Self { keys })
    }

    fn key(secret: &Secret) -> Result<Key, KeyError> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Key {
            kid: key_id(secret),
            alg: Alg::HS256,
            encoding: Some(EncodingKey::from_secret(bytes)),
            decoding: DecodingKey::from_secret(bytes),
            public: None,
        })
    }

    /// The id of the signing key (of the first key, for a verify-only keyring).
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// The algorithm of the signing key (of the first key, for a verify-only keyring).
    pub fn alg(&self) -> Alg {
        self.keys[0].alg
    }

    /// Whether this keyring can issue tokens (false for a keyring built from a JWKS).
    pub fn can_sign(&self) -> bool {
        self.keys[0].encoding.is_some()
    }

    /// Ids of every key, current first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Signs `claims` with the current key, header `{"typ":"JWT","alg":..,"kid":..}`. Errors
    /// (`InvalidKeyFormat`) on a verify-only keyring.
    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let key = &self.keys[0];
        let encoding = key.encoding.as_ref().ok_or(ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(key.alg.jwt());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, encoding)
    }

    /// Verifies `token` completely: key id, the header's `alg` against the key's pinned one
    /// (RFC 8725 §3.1: `WrongAlgorithm`, so a public key is never used as an HMAC secret),
    /// signature, `exp`, `nbf`, `iss`, `aud`, and the `iat`/lifetime rules of `rules`.
    /// `UnknownKid` when this keyring lacks the token's key.
    pub fn verify(&self, token: &UnverifiedToken<'_>, rules: &TokenRules) -> Result<Claims, Rejection> {
        self.verify_at(token, rules, chrono::Utc::now().timestamp())
    }

    /// [`Keyring::verify`] at `now` (unix seconds) for the `iat` rules.
    pub fn verify_at(&self, token: &UnverifiedToken<'_>, rules: &TokenRules, now: i64) -> Result<Claims, Rejection> {
        let key = self.keys.iter().find(|k| k.kid == token.kid()).ok_or(Rejection::UnknownKid)?;
        if token.alg() != key.alg {
            return Err(Rejection::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg.jwt());
        validation.leeway = rules.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token.raw(), &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => Rejection::BadSignature,
                ErrorKind::ExpiredSignature => Rejection::Expired,
                ErrorKind::ImmatureSignature => Rejection::NotYetValid,
                ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
                ErrorKind::InvalidAudience => Rejection::WrongAudience,
                ErrorKind::InvalidAlgorithm => Rejection::WrongAlgorithm,
                _ => Rejection::Malformed,
            })?;
        rules.check_times(&claims, now)?;
        claims.check_identity()?;
        Ok(claims)
    }

    /// Parses and verifies `raw` in one step (callers that need the key id first use
    /// [`UnverifiedToken::parse`] and [`Keyring::verify`]).
    pub fn verify_str(&self, raw: &str, rules: &TokenRules) -> Result<Claims, Rejection> {
        self.verify(&UnverifiedToken::parse(raw)?, rules)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;

    fn secret(c: char) -> Secret {
        Secret::new(std::iter::repeat_n(c, 40).collect::<String>())
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    const RULES: TokenRules = TokenRules { leeway_secs: 5, max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS };

    #[test]
    fn short_secrets_are_refused() {
        let err = Keyring::new(&Secret::new("x".repeat(31)), None).unwrap_err();
        assert_eq!(err, KeyError::TooShort(31));
        assert!(Keyring::new(&secret('a'), Some(&Secret::new("short"))).is_err());
    }

    #[test]
    fn key_id_is_stable_and_does_not_contain_the_secret() {
        assert_eq!(key_id(&secret('a')), key_id(&secret('a')));
        assert_ne!(key_id(&secret('a')), key_id(&secret('b')));
        assert_eq!(key_id(&secret('a')).len(), 16);
    }

    #[test]
    fn issued_token_verifies_and_carries_kid() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        let claims = Claims::new(7, "alice", "a@example.com", now(), 3600);
        let token = ring.issue(&claims).unwrap();
        assert_eq!(UnverifiedToken::parse(&token).unwrap().kid(), ring.current_kid());
        assert_eq!(ring.verify_str(&token, &RULES).unwrap(), claims);
    }

    #[test]
    fn previous_key_still_verifies_during_rotation() {
        let old = Keyring::new(&secret('a'), None).unwrap();
        let token = old.issue(&Claims::new(1, "u", "e@x.io", now(), 60)).unwrap();
        let rotated = Keyring::new(&secret('b'), Some(&secret('a'))).unwrap();
        assert!(rotated.verify_str(&token, &RULES).is_ok());
        let fresh = Keyring::new(&secret('b'), None).unwrap();
        assert_eq!(fresh.verify_str(&token, &RULES), Err(Rejection::UnknownKid));
    }

    #[test]
    fn expired_and_immature_tokens_are_rejected() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        let expired = ring.issue(&Claims::new(1, "u", "e@x.io", now() - 100, 10)).unwrap();
        assert_eq!(ring.verify_str(&expired, &RULES), Err(Rejection::Expired));
        let mut future = Claims::new(1, "u", "e@x.io", now(), 60);
        future.nbf = now() + 120;
        let token = ring.issue(&future).unwrap();
        assert_eq!(ring.verify_str(&token, &RULES), Err(Rejection::NotYetValid));
    }

    #[test]
    fn future_iat_and_overlong_lifetimes_are_rejected_after_the_signature() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        // Correctly signed, iat a year ahead (nbf now): refused.
        let mut c = Claims::new(1, "u", "e@x.io", now(), 3600);
        c.iat = now() + 365 * 86400;
        c.exp = c.iat + 3600;
        assert_eq!(ring.verify_str(&ring.issue(&c).unwrap(), &RULES), Err(Rejection::IssuedInFuture));
        // Correctly signed, 30-day lifetime: refused.
        let c = Claims::new(1, "u", "e@x.io", now(), 30 * 86400);
        assert_eq!(ring.verify_str(&ring.issue(&c).unwrap(), &RULES), Err(Rejection::LifetimeTooLong));
        // No iat at all: refused (required claim).
        let mut raw = serde_json::to_value(Claims::new(1, "u", "e@x.io", now(), 60)).unwrap();
        raw.as_object_mut().unwrap().remove("iat");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(ring.current_kid().to_owned());
        let token =
            jsonwebtoken::encode(&header, &raw, &EncodingKey::from_secret(secret('a').expose().as_bytes())).unwrap();
        assert_eq!(ring.verify_str(&token, &RULES), Err(Rejection::Malformed));
    }

    #[test]
    fn wrong_issuer_audience_and_signature_are_rejected() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        let mut c = Claims::new(1, "u", "e@x.io", now(), 60);
        c.iss = "someone-else".into();
        assert_eq!(ring.verify_str(&ring.issue(&c).unwrap(), &RULES), Err(Rejection::WrongIssuer));
        let mut c = Claims::new(1, "u", "e@x.io", now(), 60);
        c.aud = "other-api".into();
        assert_eq!(ring.verify_str(&ring.issue(&c).unwrap(), &RULES), Err(Rejection::WrongAudience));

        // Same kid, different signing secret: a forged signature.
        let token = ring.issue(&Claims::new(1, "u", "e@x.io", now(), 60)).unwrap();
        let (head_payload, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{head_payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(ring.verify_str(&forged, &RULES), Err(Rejection::BadSignature));
    }
}
