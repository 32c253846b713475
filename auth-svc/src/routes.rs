//! auth-svc's handlers for health, register, login and validate (logout and the revocation feed
//! are in `logout.rs`). Each carries its OpenAPI description, and the router is built from
//! those descriptions, so the served document cannot drift from the routes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use platform::ErrorBody;
use platform::http::ApiJson;
use platform::keyring::Claims;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{self, Credentials};
use crate::error::ApiError;
use crate::oauth::error::NO_STORE;
use crate::state::AppState;
use crate::throttle::LoginOutcome;
use crate::throttle::client::ClientAddress;
use crate::token;
use crate::user::{LoginCredentials, LoginRequest, RegisterRequest, RegisteredUser, Registration};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub service: String,
}

/// Liveness: the process serves HTTP. Used by the ALB target group and the ECS health check.
#[utoipa::path(get, path = "/auth/health", tag = "auth", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "healthy".into(), service: "auth".into() })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: RegisteredUser,
}

/// Creates a user. A taken username or email (both compare case-insensitively) is 409, found
/// before the password is hashed.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = RegisterResponse),
    (status = 400, body = ErrorBody, description = "missing or invalid field, malformed JSON"),
    (status = 409, body = ErrorBody, description = "username or email already exists"),
    (status = 413, body = ErrorBody),
    (status = 429, body = ErrorBody, description = "too many login/register requests from this source address; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "hashing capacity or database unavailable; see Retry-After"),
))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientAddress,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    state.throttle.check_client(client)?;
    let new = Registration::parse(body)?;
    if db::username_or_email_taken(&state.pool, &new.username, &new.email).await? {
        return Err(ApiError::Conflict);
    }
    let hash = state.hasher.hash(new.password.expose().to_owned()).await?;
    let user = db::insert_user(&state.pool, &new.username, &new.email, &hash).await?;
    tracing::info!(user_id = user.id, "user registered");
    Ok((StatusCode::CREATED, Json(RegisterResponse { user })))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicUser {
    pub id: i64,
    pub username: String,
    pub email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub user: PublicUser,
}

/// Issues a token. The username matches regardless of case. Unknown user and wrong password
/// give the same 401 and take the same time, and are counted and throttled alike.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 400, body = ErrorBody, description = "missing credentials, malformed JSON"),
    (status = 401, body = ErrorBody, description = "invalid username or password"),
    (status = 429, body = ErrorBody, description = "too many failed logins for this username, or too many login/register requests from this source address; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "hashing capacity or database unavailable; see Retry-After"),
))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddress,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<([(HeaderName, &'static str); 2], Json<LoginResponse>), ApiError> {
    state.throttle.check_client(client)?;
    let login = LoginCredentials::parse(body)?;
    // Counted before the user is looked up, so the answer cannot depend on whether it exists.
    let attempt = state.throttle.begin_login(&state.pool, &login.username).await?;
    let outcome = authenticate(&state, &login).await;
    attempt.finish(&state.pool, login_outcome(&outcome)).await;
    let user = outcome?;
    let token = token::issue(&state, &user).await?;
    tracing::info!(user_id = user.id, "login succeeded");
    let user = PublicUser { id: user.id, username: user.username, email: user.email };
    Ok((NO_STORE, Json(LoginResponse { token, user })))
}

/// The account `login` names if the password is its password. An unknown user is checked
/// against the dummy hash, so both failures cost one hash.
async fn authenticate(state: &AppState, login: &LoginCredentials) -> Result<Credentials, ApiError> {
    let user = db::credentials_by_username(&state.pool, &login.username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !state.hasher.verify(login.password.expose().to_owned(), hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    user.ok_or(ApiError::InvalidCredentials)
}

/// What the throttle makes of a login: only a checked, wrong password stays counted.
fn login_outcome<T>(result: &Result<T, ApiError>) -> LoginOutcome {
    match result {
        Ok(_) => LoginOutcome::Succeeded,
        Err(ApiError::InvalidCredentials) => LoginOutcome::Failed,
        Err(_) => LoginOutcome::Unchecked,
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidateResponse {
    pub valid: bool,
    pub user: Claims,
}

/// Verifies the bearer token in `Authorization`, revocation included. Internal: the gateways
/// call it (through Cloud Map) only for key ids they do not hold; the ALB answers it with 404.
/// A 401 body carries the machine-readable `reason` (e.g. `expired`, `unknown_kid`, `revoked`).
#[utoipa::path(post, path = "/auth/validate", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = ValidateResponse),
    (status = 401, body = ErrorBody, description = "missing, malformed, expired, revoked or foreign token; see `reason`"),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn validate(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<ValidateResponse>, ApiError> {
    let claims = token::authenticate(&state, &headers).await?;
    Ok(Json(ValidateResponse { valid: true, user: claims }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::HashError;
    use crate::password::pool::PoolError;

    #[test]
    fn only_a_checked_wrong_password_stays_counted() {
        assert_eq!(login_outcome(&Ok(())), LoginOutcome::Succeeded);
        assert_eq!(login_outcome::<()>(&Err(ApiError::InvalidCredentials)), LoginOutcome::Failed);
        let busy = ApiError::from(HashError::from(PoolError::Busy));
        for unchecked in [busy, ApiError::KeysUnavailable, ApiError::BadRequest("x".into())] {
            assert_eq!(login_outcome::<()>(&Err(unchecked)), LoginOutcome::Unchecked);
        }
    }
}
