//! `POST /auth/token`: the OAuth 2.0 client credentials grant (RFC 6749 §4.4). A machine client
//! authenticates with an API key's `client_id` and `client_secret` and gets a short-lived access
//! token (a JWT from the same keyring as login tokens) carrying the key's owner, the granted
//! `scope` and the key's `client_id`.
//!
//! The order of the checks: the per-source limit (shared with login and register), the form,
//! `grant_type`, the requested scope's syntax, client authentication (`invalid_client`, one
//! answer for every failure), the requested scope against the key's, the per-key limit, then
//! the token. Errors: see [`error`].

pub mod error;
pub mod request;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use platform::ErrorBody;
use platform::keyring::ScopeSet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_key::{self, SecretHash, store};
use crate::state::AppState;
use crate::throttle::client::ClientAddress;
use crate::token::{self, KeyOwner};
use error::{OAuthError, OAuthErrorBody, no_store};
use request::{ClientCredentials, client_credentials, is_form, parse_form};

/// The only grant type this server issues tokens for.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

// The form of `POST /auth/token` (RFC 6749 §4.4.2), for the OpenAPI document.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // read by `request::parse_form`, described here
pub struct TokenRequestForm {
    /// Must be `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: String,
    /// Space-separated scopes, a subset of the key's; absent: all of the key's scopes.
    #[schema(example = "tasks:read")]
    scope: Option<String>,
    /// With `client_secret`, instead of HTTP Basic (never both).
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires (`API_TOKEN_LIFETIME_SECS`).
    #[schema(example = 900)]
    pub expires_in: i64,
    /// The granted scopes, space-separated.
    #[schema(example = "tasks:read")]
    pub scope: String,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        no_store(&mut response);
        response
    }
}

/// Exchanges an API key's credentials for an access token (client credentials grant, RFC 6749
/// §4.4). Client authentication by HTTP Basic (the form-urlencoded `client_id` and
/// `client_secret`, RFC 6749 §2.3.1) or by the `client_id` and `client_secret` parameters,
/// never both. Error bodies carry RFC 6749 §5.2's `error` and `error_description` and the
/// contract's `message` and `reason`.
#[utoipa::path(post, path = "/auth/token", tag = "api-keys",
    security((), ("client_basic" = [])),
    request_body(content = TokenRequestForm, content_type = "application/x-www-form-urlencoded"),
    responses(
    (status = 200, body = TokenResponse, description = "the token; `Cache-Control: no-store`"),
    (status = 400, body = OAuthErrorBody, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope`"),
    (status = 401, body = OAuthErrorBody, description = "`invalid_client`: unknown client, wrong secret, revoked or expired key, no or unsupported authentication",
        headers(("WWW-Authenticate" = String, description = "Basic realm=\"task-mgmt\""))),
    (status = 429, body = ErrorBody, description = "too many token requests from this source address or for this key; see Retry-After",
        headers(("Retry-After" = u64, description = "seconds until the limit allows again"))),
    (status = 503, body = ErrorBody, description = "database or keys unavailable; see Retry-After"),
))]
pub async fn token(
    State(state): State<AppState>,
    source: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<TokenResponse, OAuthError> {
    state.throttle.check_client(source).map_err(|t| OAuthError::Service(t.into()))?;
    if !is_form(&headers) {
        return Err(OAuthError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
    }
    let mut form = parse_form(&body)?;
    match form.grant_type.as_deref() {
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some(CLIENT_CREDENTIALS) => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
    }
    let requested = form.scope.as_deref().map(requested_scopes).transpose()?;
    let credentials = client_credentials(&headers, &mut form)?;
    let key = authenticate_client(&state, &credentials).await?;
    let granted = requested.unwrap_or_else(|| key.scopes());
    if !key.scopes().includes(granted) {
        return Err(OAuthError::InvalidScope(format!("this key's scopes are {}", key.scopes())));
    }
    state.throttle.check_api_key(&credentials.client_id).map_err(|t| OAuthError::Service(t.into()))?;
    let owner = KeyOwner { user_id: key.user_id, username: &key.username, email: &key.email };
    let (access_token, expires_in) = token::issue_for_key(&state, &owner, &credentials.client_id, granted).await?;
    if key.touch_due
        && let Err(e) = store::touch(&state.pool, &key.id).await
    {
        tracing::warn!(error = %format!("{:#}", anyhow::Error::new(e)), "could not record the API key's last use");
    }
    tracing::info!(user_id = key.user_id, client_id = %credentials.client_id, scope = %granted, "access token issued (client credentials)");
    Ok(TokenResponse { access_token, token_type: "Bearer".into(), expires_in, scope: granted.to_string() })
}

/// The scopes a request names: known scope tokens, at least one (RFC 6749 §3.3).
fn requested_scopes(value: &str) -> Result<ScopeSet, OAuthError> {
    let scopes = ScopeSet::parse(value).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope("scope names no scope".into()));
    }
    Ok(scopes)
}

/// The usable key (neither revoked nor expired) that `credentials` name and prove, else
/// `invalid_client`. An id of the wrong form is refused before any query; an unknown one still
/// costs a hash comparison, like a known one.
async fn authenticate_client(
    state: &AppState,
    credentials: &ClientCredentials,
) -> Result<store::KeyForExchange, OAuthError> {
    let secret = credentials.client_secret.expose();
    if !api_key::is_client_id(&credentials.client_id) || !api_key::is_client_secret(secret) {
        return Err(OAuthError::InvalidClient);
    }
    let Some(key) = store::for_exchange(&state.pool, &credentials.client_id).await? else {
        let _ = SecretHash([0; 32]).matches(secret);
        tracing::info!(client_id = %credentials.client_id, "token request for an unknown client");
        return Err(OAuthError::InvalidClient);
    };
    if !key.secret_matches(secret) {
        tracing::info!(client_id = %credentials.client_id, "token request with a wrong client secret");
        return Err(OAuthError::InvalidClient);
    }
    if !key.usable {
        tracing::info!(client_id = %credentials.client_id, "token request for a revoked or expired API key");
        return Err(OAuthError::InvalidClient);
    }
    Ok(key)
}

/// The `client_basic` security scheme of the OpenAPI document (HTTP Basic, RFC 7617).
pub struct ClientBasicAuth;

impl utoipa::Modify for ClientBasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("an API key's client_id and client_secret, each form-urlencoded"))
                    .build(),
            ),
        );
    }
}
