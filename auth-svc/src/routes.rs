//! auth-svc's handlers. Each carries its OpenAPI description, and the router is built from
//! those descriptions, so the served document cannot drift from the routes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use platform::ErrorBody;
use platform::http::ApiJson;
use platform::keyring::{Claims, Rejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::throttle::client::ClientAddress;
use crate::token::{bearer, verify};
use crate::{db, revocation};

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 50 characters: letters, digits, `_`, `.`, `-`.
    #[schema(example = "testuser")]
    pub username: Option<String>,
    /// Up to 100 characters; unique regardless of case.
    #[schema(example = "test@example.com")]
    pub email: Option<String>,
    /// 8 to 128 characters, never truncated.
    #[schema(example = "SecurePass123!")]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    #[serde(serialize_with = "platform::timestamp::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: RegisteredUser,
}

fn required(field: Option<String>, name: &str) -> Result<String, ApiError> {
    match field {
        Some(v) if !v.is_empty() => {
            if v.contains('\0') {
                return Err(ApiError::BadRequest(format!("{name} must not contain NUL characters")));
            }
            Ok(v)
        }
        _ => Err(ApiError::BadRequest(format!("{name} is required"))),
    }
}

fn validate_username(username: &str) -> Result<(), ApiError> {
    let len = username.chars().count();
    let charset = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(3..=50).contains(&len) || !charset {
        return Err(ApiError::BadRequest(
            "username must be 3 to 50 characters: letters, digits, '_', '.' or '-'".into(),
        ));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), ApiError> {
    let valid = email.chars().count() <= 100
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid {
        return Err(ApiError::BadRequest("email must be a valid address of at most 100 characters".into()));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&len) {
        return Err(ApiError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
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
    let username = required(body.username, "username")?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    validate_username(&username)?;
    validate_email(&email)?;
    validate_password(&password)?;
    if db::username_or_email_taken(&state.pool, &username, &email).await? {
        return Err(ApiError::Conflict);
    }
    let hash = state.hasher.hash(password).await?;
    let user = db::insert_user(&state.pool, &username, &email, &hash).await?;
    tracing::info!(user_id = user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: RegisteredUser {
                id: user.id,
                username: user.username,
                email: user.email,
                created_at: user.created_at,
            },
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "testuser")]
    pub username: Option<String>,
    #[schema(example = "SecurePass123!")]
    pub password: Option<String>,
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
) -> Result<Json<LoginResponse>, ApiError> {
    state.throttle.check_client(client)?;
    let (Some(username), Some(password)) = (body.username, body.password) else {
        return Err(ApiError::BadRequest("Missing credentials: username and password are required".into()));
    };
    if username.is_empty() || password.is_empty() {
        return Err(ApiError::BadRequest("Missing credentials: username and password are required".into()));
    }
    // No stored password can be this long or contain NUL: refuse without touching the database.
    if password.chars().count() > MAX_PASSWORD_CHARS || username.contains('\0') || username.chars().count() > 50 {
        return Err(ApiError::InvalidCredentials);
    }
    // Counted before the user is looked up, so the answer cannot depend on whether it exists.
    let attempt = state.throttle.begin_login(&state.pool, &username).await?;
    let outcome = authenticate(&state, &username, password).await;
    attempt.finish(&state.pool, &outcome).await;
    let user = outcome?;
    let iat = revocation_safe_issue_time(&state, user.id).await?;
    let claims = Claims::new(user.id, &user.username, &user.email, iat, state.token_lifetime_secs);
    let keyring = state.keyring.current().ok_or(ApiError::KeysUnavailable)?;
    let token = keyring.issue(&claims).map_err(|e| ApiError::Internal(format!("sign token: {e}")))?;
    tracing::info!(user_id = user.id, "login succeeded");
    Ok(Json(LoginResponse { token, user: PublicUser { id: user.id, username: user.username, email: user.email } }))
}

/// The account for `username` if `password` is its password. An unknown user is checked against
/// the dummy hash, so both failures cost one hash.
async fn authenticate(state: &AppState, username: &str, password: String) -> Result<db::Credentials, ApiError> {
    let user = db::credentials_by_username(&state.pool, username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !state.hasher.verify(password, hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    user.ok_or(ApiError::InvalidCredentials)
}

/// Longest wait for the next second after a logout-all (a clock behind the other tasks' waits
/// no longer than this; a token issued anyway is refused, never wrongly accepted).
const CUTOFF_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// The `iat` for a new token of `user_id`: now, or, right after a logout-all in this same
/// second, the next second, so that the new token is not covered by the cut-off
/// (`iat < issued_before` is revoked; `iat` has whole-second resolution).
async fn revocation_safe_issue_time(state: &AppState, user_id: i64) -> Result<i64, ApiError> {
    let Some(issued_before) = revocation::user_cutoff(&state.pool, user_id).await? else {
        return Ok(Utc::now().timestamp());
    };
    let deadline = std::time::Instant::now() + CUTOFF_WAIT_MAX;
    loop {
        let now = Utc::now();
        if now.timestamp() >= issued_before || std::time::Instant::now() >= deadline {
            return Ok(now.timestamp());
        }
        let to_next_second = 1_000 - i64::from(now.timestamp_subsec_millis()).min(999);
        tokio::time::sleep(std::time::Duration::from_millis(to_next_second as u64)).await;
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
    let claims = verify(&state, bearer(&headers)?).await?;
    if revocation::is_revoked(&state.pool, &claims.jti, claims.user_id, claims.iat).await? {
        return Err(ApiError::InvalidToken(Rejection::Revoked));
    }
    Ok(Json(ValidateResponse { valid: true, user: claims }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(validate_username("testuser").is_ok());
        assert!(validate_username("a.b-c_d").is_ok());
        assert!(validate_username("ab").is_err());
        assert!(validate_username(&"a".repeat(51)).is_err());
        assert!(validate_username("white space").is_err());
        assert!(validate_username("ünïcode").is_err());
    }

    #[test]
    fn email_rules() {
        assert!(validate_email("test@example.com").is_ok());
        for bad in ["", "no-at", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@.com", "a@b.com."] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(90))).is_err());
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"é".repeat(128)).is_ok());
        assert!(validate_password(&"é".repeat(129)).is_err());
    }
}
