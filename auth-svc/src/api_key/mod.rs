//! API keys for machine clients (OAuth 2.0 client credentials, RFC 6749 §4.4): what a key is,
//! how its credentials look, what a client may send to create one and what it gets back.
//! `routes` has the handlers of `/auth/api-keys`, `store` the queries, and [`crate::oauth`] the
//! exchange of a key for an access token at `POST /auth/token`.
//!
//! # Credential formats
//! - `client_id`: `tmk_` + 22 base64url characters (RFC 4648 §5, no padding) of 16 random bytes,
//!   26 characters in all. Public: it names the key in tokens (the `client_id` claim), on the
//!   revocation feed and in logs.
//! - `client_secret`: `tms_` + 43 base64url characters of 32 random bytes (256 bits), 47
//!   characters in all. Shown once, in the creation response; only its SHA-256 is stored.
//!
//! Both come from the operating system's CSPRNG (`getrandom`). The fixed prefixes let secret
//! scanners (GitHub push protection, trufflehog, gitleaks) find a leaked secret with the pattern
//! `tms_[A-Za-z0-9_-]{43}` and tell it from a client id (`tmk_[A-Za-z0-9_-]{22}`).
//!
//! The stored hash is a plain SHA-256: the secret has 256 bits of entropy, so no preimage can be
//! guessed and a slow password hash (argon2) would only cost every exchange CPU time. Hashes are
//! compared in constant time ([`SecretHash::matches`]).

pub mod routes;
pub mod store;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use platform::Secret;
use platform::keyring::{Scope, ScopeSet};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Prefix of every `client_id`.
pub const CLIENT_ID_PREFIX: &str = "tmk_";
/// Prefix of every `client_secret`.
pub const CLIENT_SECRET_PREFIX: &str = "tms_";
/// Random bytes in a `client_id` (128 bits: unique without a retry loop).
const CLIENT_ID_BYTES: usize = 16;
/// Random bytes in a `client_secret` (256 bits).
const CLIENT_SECRET_BYTES: usize = 32;
/// Characters of a `client_id`: the prefix and 22 base64url characters.
pub const CLIENT_ID_CHARS: usize = 4 + 22;
/// Characters of a `client_secret`: the prefix and 43 base64url characters.
pub const CLIENT_SECRET_CHARS: usize = 4 + 43;

/// Live keys (neither revoked nor expired) one account may hold; one more is 409.
pub const MAX_LIVE_KEYS_PER_USER: i64 = 20;
/// Names are 1 to 64 characters (CHECK `api_keys_name_length`).
pub const MAX_NAME_CHARS: usize = 64;
/// `expires_in_days` is 1..=365, and `expires_at` at most this far ahead.
pub const MAX_EXPIRY_DAYS: i64 = 365;

/// A new key's credentials: the public id, the secret (shown once) and the secret's hash (stored).
pub struct NewCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub secret_hash: SecretHash,
}

impl NewCredentials {
    /// Fresh random credentials from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut id = [0u8; CLIENT_ID_BYTES];
        let mut secret = [0u8; CLIENT_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let client_secret = Secret::new(format!("{CLIENT_SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)));
        Self {
            client_id: format!("{CLIENT_ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(id)),
            secret_hash: SecretHash::of(client_secret.expose()),
            client_secret,
        }
    }
}

/// SHA-256 of a whole `client_secret` (prefix included), as stored in `api_keys.secret_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash([redacted])")
    }
}

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// A stored hash (any other length than 32 bytes never matches).
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Whether `secret` hashes to this value, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

/// Whether `value` has the form of a `client_id` (checked before any query).
pub fn is_client_id(value: &str) -> bool {
    has_form(value, CLIENT_ID_PREFIX, CLIENT_ID_CHARS)
}

/// Whether `value` has the form of a `client_secret`.
pub fn is_client_secret(value: &str) -> bool {
    has_form(value, CLIENT_SECRET_PREFIX, CLIENT_SECRET_CHARS)
}

fn has_form(value: &str, prefix: &str, chars: usize) -> bool {
    value.len() == chars
        && value
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

// `POST /auth/api-keys` body. Scopes are a JSON array of scope tokens; at most one of
// `expires_in_days` and `expires_at`, neither for a key that does not expire.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// 1 to 64 characters, not blank, no control characters.
    #[schema(example = "nightly-report")]
    pub name: Option<String>,
    /// A non-empty array of `tasks:read`, `tasks:write`.
    #[schema(example = json!(["tasks:read"]))]
    pub scopes: Option<Vec<String>>,
    /// The key expires this many days (1..=365) from now.
    #[schema(example = 90)]
    pub expires_in_days: Option<i64>,
    /// RFC 3339 instant, in the future and at most 365 days ahead.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

/// A validated [`CreateApiKeyRequest`].
#[derive(Debug)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    /// Validates `body` at `now`. Errors: [`ApiError::BadRequest`] naming the field and its rule.
    pub fn parse(body: CreateApiKeyRequest, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let bad = |m: &str| ApiError::BadRequest(m.to_owned());
        let name = body.name.ok_or_else(|| bad("name is required"))?;
        let chars = name.chars().count();
        if !(1..=MAX_NAME_CHARS).contains(&chars) || name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters, not blank, without control characters"
            )));
        }
        let scopes = parse_scopes(body.scopes.ok_or_else(|| bad("scopes is required"))?)?;
        let expires_at = match (body.expires_in_days, body.expires_at) {
            (Some(_), Some(_)) => return Err(bad("give at most one of expires_in_days and expires_at")),
            (None, None) => None,
            (Some(days), None) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Some(now + Duration::days(days)),
            (Some(_), None) => return Err(bad("expires_in_days must be 1 to 365")),
            (None, Some(at)) => Some(parse_expires_at(&at, now)?),
        };
        Ok(Self { name, scopes, expires_at })
    }
}

/// The scopes of a request: a non-empty array of known scope tokens (repeats allowed).
fn parse_scopes(scopes: Vec<String>) -> Result<ScopeSet, ApiError> {
    let known = Scope::ALL.map(Scope::as_str).join(", ");
    let mut set = ScopeSet::EMPTY;
    for token in &scopes {
        let scope = Scope::ALL.into_iter().find(|s| s.as_str() == token).ok_or_else(|| {
            let shown: String = token.chars().take(64).collect();
            ApiError::BadRequest(format!("unknown scope {shown:?}; known scopes: {known}"))
        })?;
        set = set.with(scope);
    }
    if set.is_empty() {
        return Err(ApiError::BadRequest(format!("scopes must name at least one of {known}")));
    }
    Ok(set)
}

/// An RFC 3339 date-time in `(now, now + 365 days]`.
fn parse_expires_at(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let at = DateTime::parse_from_rfc3339(value)
        .map_err(|_| {
            ApiError::BadRequest("expires_at must be an RFC 3339 date-time, e.g. 2027-01-15T00:00:00Z".into())
        })?
        .to_utc();
    if at <= now || at > now + Duration::days(MAX_EXPIRY_DAYS) {
        return Err(ApiError::BadRequest("expires_at must lie in the future, at most 365 days ahead".into()));
    }
    Ok(at)
}

/// A key as the owner sees it: never the secret or its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(example = "0b6f5f8e-3c1e-4d7a-9a59-1f0e7c2d4b8a")]
    pub id: String,
    pub name: String,
    #[schema(example = "tmk_3q2-7wLpR0aZ4d9QnV1x8A")]
    pub client_id: String,
    #[schema(example = json!(["tasks:read"]))]
    pub scopes: Vec<String>,
    #[serde(serialize_with = "platform::timestamp::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// `null`: the key does not expire.
    #[serde(serialize_with = "platform::timestamp::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The last successful exchange, at one-minute resolution; `null` before the first.
    #[serde(serialize_with = "platform::timestamp::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The scope tokens of a stored `scopes` value, in [`Scope::ALL`] order.
pub fn scope_list(scopes: ScopeSet) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: serde_json::Value) -> CreateApiKeyRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn credentials_have_their_prefix_length_and_alphabet_and_the_hash_matches_only_the_secret() {
        let a = NewCredentials::generate();
        let b = NewCredentials::generate();
        assert!(is_client_id(&a.client_id), "{}", a.client_id);
        assert!(is_client_secret(a.client_secret.expose()));
        assert_ne!(a.client_id, b.client_id);
        assert_ne!(a.client_secret, b.client_secret);
        assert!(a.secret_hash.matches(a.client_secret.expose()));
        assert!(!a.secret_hash.matches(b.client_secret.expose()));
        assert!(!is_client_id(a.client_secret.expose()) && !is_client_secret(&a.client_id));
        assert_eq!(format!("{:?}", a.secret_hash), "SecretHash([redacted])");
        assert!(!is_client_id("tmk_short") && !is_client_id("tmk_3q2+7wLpR0aZ4d9QnV1x8A"));
        assert_eq!(SecretHash::from_stored(&[0; 31]), None);
    }

    #[test]
    fn a_request_is_validated_field_by_field() {
        let now = Utc::now();
        let ok = NewApiKey::parse(
            request(json!({"name": "ci", "scopes": ["tasks:write", "tasks:read", "tasks:read"]})),
            now,
        )
        .unwrap();
        assert_eq!((ok.name.as_str(), ok.scopes, ok.expires_at), ("ci", ScopeSet::ALL, None));
        let days =
            NewApiKey::parse(request(json!({"name": "ci", "scopes": ["tasks:read"], "expires_in_days": 30})), now)
                .unwrap();
        assert_eq!(days.expires_at, Some(now + Duration::days(30)));
        let at = NewApiKey::parse(
            request(json!({"name": "ci", "scopes": ["tasks:read"], "expires_at": "2999-01-01T00:00:00Z"})),
            DateTime::parse_from_rfc3339("2998-06-01T00:00:00Z").unwrap().to_utc(),
        )
        .unwrap();
        assert_eq!(at.expires_at.unwrap().to_rfc3339(), "2999-01-01T00:00:00+00:00");
        let long_name = "x".repeat(65);
        for bad in [
            json!({"scopes": ["tasks:read"]}),
            json!({"name": "", "scopes": ["tasks:read"]}),
            json!({"name": "   ", "scopes": ["tasks:read"]}),
            json!({"name": long_name, "scopes": ["tasks:read"]}),
            json!({"name": "a\u{0}b", "scopes": ["tasks:read"]}),
            json!({"name": "ci"}),
            json!({"name": "ci", "scopes": []}),
            json!({"name": "ci", "scopes": ["tasks:admin"]}),
            json!({"name": "ci", "scopes": ["tasks:read"], "expires_in_days": 0}),
            json!({"name": "ci", "scopes": ["tasks:read"], "expires_in_days": 366}),
            json!({"name": "ci", "scopes": ["tasks:read"], "expires_at": "2000-01-01T00:00:00Z"}),
            json!({"name": "ci", "scopes": ["tasks:read"], "expires_at": "tomorrow"}),
            json!({"name": "ci", "scopes": ["tasks:read"], "expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}),
        ] {
            assert!(matches!(NewApiKey::parse(request(bad.clone()), now), Err(ApiError::BadRequest(_))), "{bad}");
        }
        assert_eq!(
            NewApiKey::parse(request(json!({"name": "x".repeat(64), "scopes": ["tasks:read"]})), now)
                .unwrap()
                .name
                .len(),
            64
        );
    }
}
