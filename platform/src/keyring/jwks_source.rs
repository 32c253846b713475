//! The gateway's keyring in RS256/EdDSA mode: auth-svc's JWKS over HTTP
//! (`AUTH_SERVICE_URL` + `/auth/.well-known/jwks.json`), re-read by the [`super::store::Refresher`]
//! periodically and when a token names a key id the gateway does not hold.

use std::time::Duration;

use async_trait::async_trait;

use super::Keyring;
use super::jwk::{Jwks, MAX_JWKS_BYTES};
use super::store::KeyringSource;

/// Longest wait for one JWKS response.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a JWKS document from `url` (HTTP GET, 200, at most [`MAX_JWKS_BYTES`]).
pub struct JwksSource {
    url: String,
    client: reqwest::Client,
}

impl JwksSource {
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default();
        Self { url: url.into(), client }
    }

    async fn fetch(&self) -> Result<Jwks, String> {
        let mut response = self.client.get(&self.url).send().await.map_err(|e| format!("GET failed: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("GET answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the body: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
            }
        }
        Jwks::parse(&body).map_err(|e| e.to_string())
    }
}

#[async_trait]
impl KeyringSource for JwksSource {
    async fn load(&self) -> Result<Keyring, String> {
        Keyring::from_jwks(&self.fetch().await?).map_err(|e| match e {
            super::JwkError::NotJwks => "the JWKS holds no keys".to_owned(),
            other => other.to_string(),
        })
    }

    fn describe(&self) -> String {
        format!("JWKS {}", self.url)
    }
}
