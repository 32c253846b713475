//! Verifying a presented bearer token in auth-svc (`/auth/validate`, logout): the same keyring
//! and [`TokenRules`] as the gateway, with one addition: a key id this task does not hold makes
//! it re-read its keyring (bounded wait) before answering, so during a rotation a task that has
//! not refreshed yet does not refuse tokens of the new key.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use platform::keyring::store::Freshness;
use platform::keyring::{Claims, Rejection, UnverifiedToken, bearer_token};

use crate::AppState;
use crate::error::ApiError;

/// Longest wait for a keyring refresh when a token's key id is unknown. Below the gateway's
/// fallback deadline (1.5 s by default), so the gateway still gets an answer.
pub const UNKNOWN_KID_REFRESH_WAIT: Duration = Duration::from_secs(1);

/// The one bearer token of a request (RFC 6750 §2.1): none is `Missing`, two `Authorization`
/// headers are `Malformed`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(ApiError::InvalidToken(Rejection::Missing)),
        (Some(v), None) => v.to_str().map_err(|_| ApiError::InvalidToken(Rejection::Malformed))?,
        (Some(_), Some(_)) => return Err(ApiError::InvalidToken(Rejection::Malformed)),
    };
    bearer_token(value).map_err(ApiError::InvalidToken)
}

/// Verifies `raw` (signature, times, issuer, audience). Revocation is not checked here.
/// Errors: `InvalidToken` (401), `KeysUnavailable` (503) while no keyring is loaded or a needed
/// refresh does not complete in time.
pub async fn verify(state: &AppState, raw: &str) -> Result<Claims, ApiError> {
    let token = UnverifiedToken::parse(raw).map_err(ApiError::InvalidToken)?;
    let ring = state.keyring.current().ok_or(ApiError::KeysUnavailable)?;
    match ring.verify(&token, &state.rules) {
        Err(Rejection::UnknownKid) => {
            match state.keyring.refreshed_since(Instant::now(), UNKNOWN_KID_REFRESH_WAIT).await {
                Freshness::Refreshed(ring) => ring.verify(&token, &state.rules).map_err(ApiError::InvalidToken),
                Freshness::Fixed(_) => Err(ApiError::InvalidToken(Rejection::UnknownKid)),
                Freshness::Pending => Err(ApiError::KeysUnavailable),
            }
        }
        result => result.map_err(ApiError::InvalidToken),
    }
}
