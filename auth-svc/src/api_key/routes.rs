//! `POST /auth/api-keys`, `GET /auth/api-keys`, `DELETE /auth/api-keys/{id}`: a user manages
//! the API keys of the account with a login token (a token from an API key gets 403).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use chrono::Utc;
use platform::ErrorBody;
use platform::http::ApiJson;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiKeyView, CreateApiKeyRequest, NewApiKey, NewCredentials, store};
use crate::error::ApiError;
use crate::oauth::error::NO_STORE;
use crate::state::AppState;
use crate::token::authenticate_login;

/// A new key: the stored view and the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Shown once: only its SHA-256 is stored. `tms_` + 43 base64url characters.
    #[schema(example = "tms_vJ0m5cQ1c3nq2R8p-0Yd6m3HfGq9zWkL1sXbT4aE7uI")]
    pub client_secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreateApiKeyResponse {
    pub api_key: CreatedApiKey,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

/// Creates an API key for the caller's account. The response carries `client_secret` once;
/// exchange `client_id` and `client_secret` at `POST /auth/token` for access tokens.
#[utoipa::path(post, path = "/auth/api-keys", tag = "api-keys", security(("bearer" = [])),
    request_body = CreateApiKeyRequest, responses(
    (status = 201, body = CreateApiKeyResponse),
    (status = 400, body = ErrorBody, description = "missing or invalid field, malformed JSON"),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 403, body = ErrorBody, description = "a token from an API key (`reason` `insufficient_scope`): keys are managed with a login token"),
    (status = 409, body = ErrorBody, description = "the account already has 20 active keys (`reason` `api_key_limit`)"),
    (status = 429, body = ErrorBody, description = "too many API key changes for this account; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, [(HeaderName, &'static str); 2], Json<CreateApiKeyResponse>), ApiError> {
    let claims = authenticate_login(&state, &headers).await?;
    let new = NewApiKey::parse(body, Utc::now())?;
    state.throttle.check_api_key_change(claims.user_id)?;
    let credentials = NewCredentials::generate();
    let key = store::create(&state.pool, claims.user_id, &new, &credentials).await?;
    tracing::info!(user_id = claims.user_id, client_id = %key.client_id, scopes = %new.scopes, "API key created");
    let api_key = CreatedApiKey { key, client_secret: credentials.client_secret.expose().to_owned() };
    Ok((StatusCode::CREATED, NO_STORE, Json(CreateApiKeyResponse { api_key })))
}

/// The caller's API keys that are not revoked (expired ones included), newest first. Never
/// the secret or its hash.
#[utoipa::path(get, path = "/auth/api-keys", tag = "api-keys", security(("bearer" = [])), responses(
    (status = 200, body = ApiKeyList),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 403, body = ErrorBody, description = "a token from an API key (`reason` `insufficient_scope`)"),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<ApiKeyList>, ApiError> {
    let claims = authenticate_login(&state, &headers).await?;
    Ok(Json(ApiKeyList { api_keys: store::list(&state.pool, claims.user_id).await? }))
}

/// Revokes one of the caller's API keys: it no longer authenticates at `POST /auth/token`,
/// `/auth/validate` refuses its tokens at once (`reason` `revoked`), and every gateway within
/// its revocation poll interval (the feed's `api_key` entry).
#[utoipa::path(delete, path = "/auth/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "the key's id (a UUID)")), responses(
    (status = 204, description = "the key is revoked"),
    (status = 400, body = ErrorBody, description = "the id is not a UUID"),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 403, body = ErrorBody, description = "a token from an API key (`reason` `insufficient_scope`)"),
    (status = 404, body = ErrorBody, description = "no such key of the caller (unknown, another user's, or already revoked)"),
    (status = 429, body = ErrorBody, description = "too many API key changes for this account; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let claims = authenticate_login(&state, &headers).await?;
    let id = uuid::Uuid::try_parse(&id).map_err(|_| ApiError::BadRequest("the API key id must be a UUID".into()))?;
    state.throttle.check_api_key_change(claims.user_id)?;
    // Every token of the key is issued before this moment and lives at most the token lifetime
    // (plus the clock leeway a verifier grants): after that the entry can match nothing.
    let leeway = i64::try_from(state.rules.leeway_secs).unwrap_or(i64::MAX);
    let expires_at = Utc::now().timestamp().saturating_add(state.api_token_lifetime_secs).saturating_add(leeway);
    if !store::revoke(&state.pool, claims.user_id, &id, expires_at).await? {
        return Err(ApiError::ApiKeyNotFound);
    }
    tracing::info!(user_id = claims.user_id, api_key_id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
