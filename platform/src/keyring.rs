//! JWTs of this system: the claims, the key id derived from a secret, and a keyring that issues
//! and verifies HS256 tokens with the current key and, during a rotation, the previous one.

use std::fmt;

use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Secret;

/// `iss` of every token auth-svc issues.
pub const ISSUER: &str = "task-mgmt-auth";
/// `aud` of every token auth-svc issues.
pub const AUDIENCE: &str = "task-mgmt-api";
/// Secrets shorter than this are refused at start-up.
pub const MIN_SECRET_BYTES: usize = 32;
/// Tokens longer than this are refused before any decoding. Ours are ~450 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Default clock leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

/// The token's claims. `user_id`, `username` and `email` are kept from the original system.
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
    pub jti: String,
}

impl Claims {
    /// Claims for a token issued `now` (unix seconds) that lives `lifetime_secs`.
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
        }
    }
}

/// Why a token was not accepted. `reason()` is a low-cardinality metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("No authentication token provided")]
    Missing,
    #[error("Authentication token is too large")]
    TooLarge,
    #[error("Invalid token")]
    Malformed,
    #[error("Token signed with an unknown key")]
    UnknownKid,
    #[error("Invalid token")]
    BadSignature,
    #[error("Token has expired")]
    Expired,
    #[error("Token is not valid yet")]
    NotYetValid,
    #[error("Invalid token")]
    WrongIssuer,
    #[error("Invalid token")]
    WrongAudience,
    #[error("Invalid token")]
    WrongAlgorithm,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongAlgorithm => "wrong_algorithm",
        }
    }
}

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

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The current key (signs and verifies) and optionally the previous one (verifies only).
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("kids", &self.kids()).finish()
    }
}

impl Keyring {
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
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }

    /// The id of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Ids of every key, current first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Signs `claims` with the current key.
    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
    }

    /// Verifies `token` completely: size, algorithm, key id, signature, `exp`, `nbf`, `iss`, `aud`.
    pub fn verify(&self, token: &str, leeway_secs: u64) -> Result<Claims, Rejection> {
        let kid = token_kid(token)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(Rejection::UnknownKid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => Rejection::BadSignature,
                ErrorKind::ExpiredSignature => Rejection::Expired,
                ErrorKind::ImmatureSignature => Rejection::NotYetValid,
                ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
                ErrorKind::InvalidAudience => Rejection::WrongAudience,
                ErrorKind::InvalidAlgorithm => Rejection::WrongAlgorithm,
                _ => Rejection::Malformed,
            }
        })
    }
}

/// The `kid` of a token, after the size cap and the algorithm pin, without verifying anything.
pub fn token_kid(token: &str) -> Result<String, Rejection> {
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(Rejection::WrongAlgorithm);
    }
    header.kid.filter(|k| !k.is_empty() && k.len() <= 64).ok_or(Rejection::Malformed)
}

/// Extracts the token from one `Authorization` header value: `Bearer <token>`, scheme
/// case-insensitive, exactly one token.
pub fn bearer_token(header_value: &str) -> Result<&str, Rejection> {
    if header_value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(Rejection::TooLarge);
    }
    let (scheme, rest) = header_value.trim().split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Malformed);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    if token.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: char) -> Secret {
        Secret::new(std::iter::repeat_n(c, 40).collect::<String>())
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

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
        assert_eq!(token_kid(&token).unwrap(), ring.current_kid());
        assert_eq!(ring.verify(&token, 5).unwrap(), claims);
    }

    #[test]
    fn previous_key_still_verifies_during_rotation() {
        let old = Keyring::new(&secret('a'), None).unwrap();
        let token = old.issue(&Claims::new(1, "u", "e@x.io", now(), 60)).unwrap();
        let rotated = Keyring::new(&secret('b'), Some(&secret('a'))).unwrap();
        assert!(rotated.verify(&token, 5).is_ok());
        let fresh = Keyring::new(&secret('b'), None).unwrap();
        assert_eq!(fresh.verify(&token, 5), Err(Rejection::UnknownKid));
    }

    #[test]
    fn expired_and_immature_tokens_are_rejected() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        let expired = ring.issue(&Claims::new(1, "u", "e@x.io", now() - 100, 10)).unwrap();
        assert_eq!(ring.verify(&expired, 5), Err(Rejection::Expired));
        let mut future = Claims::new(1, "u", "e@x.io", now(), 60);
        future.nbf = now() + 120;
        let token = ring.issue(&future).unwrap();
        assert_eq!(ring.verify(&token, 5), Err(Rejection::NotYetValid));
    }

    #[test]
    fn wrong_issuer_audience_and_signature_are_rejected() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        let mut c = Claims::new(1, "u", "e@x.io", now(), 60);
        c.iss = "someone-else".into();
        assert_eq!(ring.verify(&ring.issue(&c).unwrap(), 5), Err(Rejection::WrongIssuer));
        let mut c = Claims::new(1, "u", "e@x.io", now(), 60);
        c.aud = "other-api".into();
        assert_eq!(ring.verify(&ring.issue(&c).unwrap(), 5), Err(Rejection::WrongAudience));

        // Same kid, different signing secret: a forged signature.
        let token = ring.issue(&Claims::new(1, "u", "e@x.io", now(), 60)).unwrap();
        let (head_payload, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{head_payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(ring.verify(&forged, 5), Err(Rejection::BadSignature));
    }

    #[test]
    fn other_algorithms_and_garbage_are_rejected_before_verification() {
        let ring = Keyring::new(&secret('a'), None).unwrap();
        // {"alg":"none","kid":"x"} . {} . ""
        let none = "eyJhbGciOiJub25lIiwia2lkIjoieCJ9.e30.";
        assert!(matches!(ring.verify(none, 5), Err(Rejection::Malformed | Rejection::WrongAlgorithm)));
        assert_eq!(ring.verify("invalid-token", 5), Err(Rejection::Malformed));
        assert_eq!(ring.verify("", 5), Err(Rejection::Missing));
        assert_eq!(ring.verify(&"a".repeat(MAX_TOKEN_BYTES + 1), 5), Err(Rejection::TooLarge));
    }

    #[test]
    fn bearer_parsing_takes_exactly_one_token() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer_token("bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("Basic dXNlcg=="), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer a b"), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer a,b"), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer "), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer"), Err(Rejection::Malformed));
    }
}
