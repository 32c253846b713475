//! Tokens in auth-svc. Issuing (login, and the client credentials grant of an API key): signed
//! with the current key, never covered by a logout-all of the same second. Authenticating a presented bearer token (`/auth/validate`,
//! logout, logout-all: [`authenticate`], revocation included): the same keyring and [`TokenRules`](platform::keyring::TokenRules) as the gateway,
//! with one addition: a key id this task does not hold makes it re-read its keyring (bounded
//! wait) before answering, so during a rotation a task that has not refreshed yet does not
//! refuse tokens of the new key.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use chrono::Utc;
use platform::keyring::store::Freshness;
use platform::keyring::{Claims, Rejection, ScopeSet, UnverifiedToken, bearer_token};

use crate::db::Credentials;
use crate::error::ApiError;
use crate::revocation;
use crate::state::AppState;

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

/// The claims of the request's bearer token if it is valid and not revoked: what every
/// endpoint that takes a bearer token calls, so a revoked token gets the same 401 (`reason`
/// `revoked`) everywhere. Errors: `InvalidToken` (401: missing, malformed, expired, foreign,
/// revoked), `KeysUnavailable` and `Database` (503).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let claims = verify(state, bearer(headers)?).await?;
    let revoked =
        revocation::is_revoked(&state.pool, &claims.jti, claims.user_id, claims.iat, claims.client_id.as_deref())
            .await?;
    if revoked {
        return Err(ApiError::InvalidToken(Rejection::Revoked));
    }
    Ok(claims)
}

/// [`authenticate`], for endpoints that manage the account (API keys, logout-all): the token
/// must be a login token. A token from an API key (it has a `client_id` claim) is refused with
/// [`ApiError::LoginTokenRequired`] (403, RFC 6750 §3.1 `insufficient_scope`), whatever its
/// scopes: a machine client's key never creates keys or ends its owner's sessions.
pub async fn authenticate_login(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let claims = authenticate(state, headers).await?;
    if claims.client_id.is_some() {
        return Err(ApiError::LoginTokenRequired);
    }
    Ok(claims)
}

/// Verifies `raw` (signature, times, issuer, audience). Revocation is not checked here: see
/// [`authenticate`].
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

/// Longest wait for the next second after a logout-all (a clock behind the other tasks' waits
/// no longer than this; a token issued anyway is refused, never wrongly accepted).
const CUTOFF_WAIT_MAX: Duration = Duration::from_secs(2);

/// A signed login token for `user`, valid for `JWT_EXPIRATION` from its `iat`. Errors:
/// `KeysUnavailable` (503) while no keyring is loaded, `Signing` (500).
#[tracing::instrument(name = "token sign", skip_all)]
pub async fn issue(state: &AppState, user: &Credentials) -> Result<String, ApiError> {
    let iat = revocation_safe_issue_time(state, user.id).await?;
    sign(state, &Claims::new(user.id, &user.username, &user.email, iat, state.token_lifetime_secs))
}

/// The owner of an API key, as its tokens name it.
pub struct KeyOwner<'a> {
    pub user_id: i64,
    pub username: &'a str,
    pub email: &'a str,
}

/// A signed access token from the API key `client_id` (client credentials grant, RFC 6749
/// §4.4.3): the owner's identity claims, `scope` = `scopes`, `client_id`, valid for
/// `API_TOKEN_LIFETIME_SECS` from its `iat`. Returns the token and its lifetime in seconds.
/// Errors as [`issue`].
pub async fn issue_for_key(
    state: &AppState,
    owner: &KeyOwner<'_>,
    client_id: &str,
    scopes: ScopeSet,
) -> Result<(String, i64), ApiError> {
    let iat = revocation_safe_issue_time(state, owner.user_id).await?;
    let lifetime = state.api_token_lifetime_secs;
    let mut claims = Claims::new(owner.user_id, owner.username, owner.email, iat, lifetime);
    claims.scope = Some(scopes.to_string());
    claims.client_id = Some(client_id.to_owned());
    Ok((sign(state, &claims)?, lifetime))
}

fn sign(state: &AppState, claims: &Claims) -> Result<String, ApiError> {
    let keyring = state.keyring.current().ok_or(ApiError::KeysUnavailable)?;
    keyring.issue(claims).map_err(ApiError::Signing)
}

/// The `iat` for a new token of `user_id`: now, or, right after a logout-all in this same
/// second, the next second, so that the new token is not covered by the cut-off
/// (`iat < issued_before` is revoked; `iat` has whole-second resolution).
async fn revocation_safe_issue_time(state: &AppState, user_id: i64) -> Result<i64, ApiError> {
    let Some(issued_before) = revocation::user_cutoff(&state.pool, user_id).await? else {
        return Ok(Utc::now().timestamp());
    };
    let deadline = Instant::now() + CUTOFF_WAIT_MAX;
    loop {
        let now = Utc::now();
        if now.timestamp() >= issued_before || Instant::now() >= deadline {
            return Ok(now.timestamp());
        }
        let to_next_second = 1_000 - i64::from(now.timestamp_subsec_millis()).min(999);
        tokio::time::sleep(Duration::from_millis(to_next_second as u64)).await;
    }
}
