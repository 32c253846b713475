//! `GET /auth/.well-known/jwks.json`: the public keys of auth-svc's tokens (RFC 7517 §5), for
//! the gateways (RS256/EdDSA), the ALB's JWT verification (RS256) and anyone else verifying a
//! token. Public: the keys are public by construction.

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use platform::keyring::Jwks;

use crate::AppState;

/// `Cache-Control` of the JWKS: caches may keep it a minute. The publish delay
/// (`JWT_PUBLISH_DELAY_SECS`) is far longer, so a cached copy never lacks a key that signs.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=60";

/// The keys auth-svc signs with and the previous and pending ones (signing key first), each
/// with `kid` = its RFC 7638 thumbprint. `{"keys": []}` in HS256 mode: that secret is not
/// public.
#[utoipa::path(get, path = "/auth/.well-known/jwks.json", tag = "auth", responses(
    (status = 200, body = Jwks, description = "the JWK Set (RFC 7517 §5); empty in HS256 mode",
        headers(("Cache-Control" = String, description = "public, max-age=60"))),
))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let set = state.keyring.current().map(|ring| ring.jwks()).unwrap_or_default();
    ([(CACHE_CONTROL, JWKS_CACHE_CONTROL)], Json(set))
}
