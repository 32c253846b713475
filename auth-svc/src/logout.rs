//! Logout and revocation: `POST /auth/logout` revokes the presented token,
//! `POST /auth/logout-all` every token of its user issued up to now, and
//! `GET /internal/revocations` serves the log the gateways pull (see [`platform::revocation`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use platform::ErrorBody;
use platform::http::ApiQuery;
use platform::revocation::{DEFAULT_PAGE, MAX_PAGE, RevocationPage};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::revocation;
use crate::state::AppState;
use crate::token::{authenticate, authenticate_login};

/// Revokes the presented token until its `exp` (kept `RETAIN_AFTER_EXP_SECS` longer, the
/// largest leeway). An already revoked token is refused like at every endpoint (401,
/// `reason` `revoked`), so a stolen token cannot keep logging its owner out.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "the token is revoked; gateways refuse it within their poll interval"),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 429, body = ErrorBody, description = "too many logouts for this account; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let claims = authenticate(&state, &headers).await?;
    state.throttle.check_logout(claims.user_id)?;
    revocation::revoke_token(&state.pool, claims.user_id, &claims.jti, claims.exp).await?;
    tracing::info!(user_id = claims.user_id, "token revoked (logout)");
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every token of the caller issued up to now (a per-user cut-off), API key tokens
/// included; tokens issued afterwards work. The presented token must itself be valid and not
/// revoked (401 otherwise), and a login token: a token from an API key gets 403 (`reason`
/// `insufficient_scope`), so a machine client cannot end its owner's sessions.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "every token issued so far is revoked"),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 403, body = ErrorBody, description = "a token from an API key (`reason` `insufficient_scope`)"),
    (status = 429, body = ErrorBody, description = "too many logouts for this account; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn logout_all(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let claims = authenticate_login(&state, &headers).await?;
    state.throttle.check_logout(claims.user_id)?;
    // iat has whole-second resolution: revoke everything issued in this second too. Login
    // issues this user's next token no earlier than the following second (see
    // `token::issue`).
    let issued_before = Utc::now().timestamp() + 1;
    let max_lifetime = i64::try_from(state.rules.max_lifetime_secs).unwrap_or(i64::MAX);
    let expires_at = issued_before.saturating_add(max_lifetime);
    revocation::revoke_user_tokens(&state.pool, claims.user_id, issued_before, expires_at).await?;
    tracing::info!(user_id = claims.user_id, "every token of the user revoked (logout-all)");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Entries with a `seq` above this (0 for everything live).
    #[serde(default)]
    pub after: i64,
    /// Page size, 1..=5000 (default 1000).
    pub limit: Option<u32>,
}

/// The revocation log since a cursor, for the gateways (reached through Cloud Map; the ALB does
/// not route `/internal`).
#[utoipa::path(get, path = "/internal/revocations", tag = "internal", params(FeedParams), responses(
    (status = 200, body = RevocationPage),
    (status = 400, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "database unavailable; see Retry-After"),
))]
pub async fn feed(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> Result<Json<RevocationPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if params.after < 0 || !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("after must be >= 0 and limit 1..={MAX_PAGE}")));
    }
    Ok(Json(revocation::page(&state.pool, params.after, limit).await?))
}
