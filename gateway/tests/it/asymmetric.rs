//! RS256 and EdDSA: a real auth-svc signs with its private key and publishes the JWKS; the
//! gateway holds no key, loads that JWKS, and verifies every token locally with each key's
//! pinned algorithm. Forgeries (algorithm confusion with the public key as HMAC secret, `none`,
//! another key under the same kid, refused headers) are 401 with their reason.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use platform::Secret;
use platform::keyring::{Alg, Claims, Jwks, PrivateKey, UnverifiedToken};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use testkit::TestDatabase;
use testkit::harness::*;

fn private_key(alg: Alg) -> (PrivateKey, Secret) {
    PrivateKey::generate(alg).unwrap()
}

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A token with header `header` over valid claims, signed with `key` (HS256 secret bytes, or a
/// PKCS#8 key), or with a dummy signature when `key` is `None`.
fn token_with(header: Value, key: Option<(Algorithm, &EncodingKey)>) -> String {
    let claims = Claims::new(1, "mallory", "m@example.com", chrono::Utc::now().timestamp(), 600);
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let signing_input = format!("{head}.{body}");
    let signature = match key {
        Some((alg, k)) => jsonwebtoken::crypto::sign(signing_input.as_bytes(), k, alg).unwrap(),
        None => "AAAA".into(),
    };
    format!("{signing_input}.{signature}")
}

/// The RSA public key of `jwk` as SPKI PEM and DER: what an attacker would try as an HMAC secret.
fn rsa_public_pem_and_der(jwks: &Jwks) -> (String, Vec<u8>) {
    let jwk = &jwks.keys[0];
    let int = |v: &Option<String>| rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(v.as_deref().unwrap()).unwrap());
    let key = rsa::RsaPublicKey::new(int(&jwk.n), int(&jwk.e)).unwrap();
    (key.to_public_key_pem(LineEnding::LF).unwrap(), key.to_public_key_der().unwrap().into_vec())
}

#[tokio::test]
async fn tokens_of_a_real_auth_svc_pass_and_forgeries_are_refused_with_their_reason() {
    let db = TestDatabase::new().await;
    let task = start_task(&db.url).await;
    let c = client();
    for alg in [Alg::RS256, Alg::EdDSA] {
        let (key, pem) = private_key(alg);
        let keyring = KeyringSource::PrivateKey { alg, current: pem, previous: None };
        let auth = start_auth_with(auth_settings(&db.url, keyring)).await;
        let gateway = start_gateway(test_sidecar(), task.addr, &auth.url(), KeyringSource::Jwks { alg }, true).await;
        let url = gateway.url_for("/tasks");

        let (token, _) = login(&auth, &format!("asym{}", alg.as_str().to_lowercase())).await;
        assert_eq!(UnverifiedToken::parse(&token).unwrap().alg(), alg);
        assert_eq!(get(&c, &url, &token).await.0, 200, "{alg}: a token of auth-svc passes");
        let validations = auth_validate_calls(&auth).await;

        let jwks: Jwks = c.get(auth.url_for("/auth/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        let kid = key.kid();
        let (other, other_pem) = private_key(alg);
        let other_key = match alg {
            Alg::RS256 => EncodingKey::from_rsa_der(&rsa_pkcs1_der(other_pem.expose())),
            _ => EncodingKey::from_ed_der(&ed_pkcs8_der(other_pem.expose())),
        };
        let jwt_alg = if alg == Alg::RS256 { Algorithm::RS256 } else { Algorithm::EdDSA };
        let mut forged = vec![
            (token_with(json!({"alg": jwt_alg, "kid": kid}), Some((jwt_alg, &other_key))), "bad_signature"),
            (token_with(json!({"alg": "none", "kid": kid}), None), "wrong_algorithm"),
            (token_with(json!({"alg": jwt_alg, "kid": kid, "crit": ["exp"]}), None), "unsupported_header"),
            (token_with(json!({"alg": jwt_alg, "kid": kid, "jku": auth.url()}), None), "unsupported_header"),
            (token_with(json!({"alg": jwt_alg, "kid": kid, "typ": "at+jwt"}), None), "unsupported_header"),
        ];
        drop(other);
        if alg == Alg::RS256 {
            let (pem, der) = rsa_public_pem_and_der(&jwks);
            for secret in [pem.as_bytes(), &der] {
                let hmac = EncodingKey::from_secret(secret);
                forged.push((
                    token_with(json!({"alg": "HS256", "kid": kid}), Some((Algorithm::HS256, &hmac))),
                    "wrong_algorithm",
                ));
            }
        }
        for (token, reason) in &forged {
            let (status, body) = get(&c, &url, token).await;
            assert_eq!((status, body["reason"].as_str()), (401, Some(*reason)), "{alg}: {token}");
        }
        // Every decision was local: the gateway never asked auth-svc about these tokens.
        assert_eq!(auth_validate_calls(&auth).await, validations, "{alg}");
        drop(gateway);
        drop(auth);
    }
}

fn rsa_pkcs1_der(pem: &str) -> Vec<u8> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap().to_pkcs1_der().unwrap().as_bytes().to_vec()
}

fn ed_pkcs8_der(pem: &str) -> Vec<u8> {
    let (_, doc) = rsa::pkcs8::SecretDocument::from_pem(pem).unwrap();
    doc.as_bytes().to_vec()
}

#[tokio::test]
async fn the_gateway_is_not_ready_until_it_holds_the_jwks() {
    let db = TestDatabase::new().await;
    let task = start_task(&db.url).await;
    let (_, pem) = private_key(Alg::EdDSA);
    let keyring = KeyringSource::PrivateKey { alg: Alg::EdDSA, current: pem, previous: None };
    let settings = auth_settings(&db.url, keyring);
    let auth_url = format!("http://{}", settings.service.listen);
    let gateway =
        start_gateway(test_sidecar(), task.addr, &auth_url, KeyringSource::Jwks { alg: Alg::EdDSA }, false).await;
    let c = client();
    let ready = gateway.metrics_url("/ready").unwrap();
    // auth-svc is not running: no JWKS, not ready, with the contract's error body.
    let r = c.get(&ready).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Service Unavailable");
    assert!(body["message"].is_string());

    let auth = start_auth_with(settings).await;
    let t = Instant::now();
    while c.get(&ready).send().await.unwrap().status() != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "gateway not ready after auth-svc came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (token, _) = login(&auth, "asymready").await;
    assert_eq!(get(&c, &gateway.url_for("/tasks"), &token).await.0, 200);
}
