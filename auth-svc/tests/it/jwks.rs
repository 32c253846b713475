//! `GET /auth/.well-known/jwks.json` in each signing mode, and tokens of the RS256/EdDSA modes
//! verified with nothing but the published keys (what a gateway does).

use axum::Router;
use axum::http::{Method, StatusCode};
use platform::keyring::{Alg, Jwks, Keyring, PrivateKey, TokenRules, UnverifiedToken};
use serde_json::json;
use testkit::api::{request, send};
use testkit::{Reply, TestDatabase};

use auth_svc::config::Config;
use auth_svc::{AppState, router};

const JWKS: &str = "/auth/.well-known/jwks.json";

/// An auth-svc router on `db` with `JWT_SECRET` replaced by `keyring` settings.
fn app(db: &TestDatabase, keyring: &[(&str, &str)]) -> Router {
    let mut env = crate::harness::env(db, keyring);
    if keyring.iter().any(|(k, _)| *k == "JWT_ALG") {
        env.remove("JWT_SECRET");
    }
    let config = Config::from_source(&env).expect("valid test config");
    router(AppState::new(config, db.pool.clone(), platform::metrics::HttpMetrics::new()))
}

async fn get_jwks(app: &Router) -> (Reply, Jwks) {
    let r = send(app, request(Method::GET, JWKS, &[], None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let set = Jwks::parse(&r.raw).unwrap();
    (r, set)
}

async fn token(app: &Router, name: &str) -> String {
    let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "correct-horse-battery"});
    let r = send(app, request(Method::POST, "/auth/register", &[], Some(body))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.raw));
    let body = json!({"username": name, "password": "correct-horse-battery"});
    let r = send(app, request(Method::POST, "/auth/login", &[], Some(body))).await;
    assert_eq!(r.status, StatusCode::OK);
    r.json["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hs256_publishes_an_empty_key_set_without_authentication() {
    let db = TestDatabase::new().await;
    let app = app(&db, &[]);
    let (r, set) = get_jwks(&app).await;
    assert_eq!(r.json, json!({"keys": []}));
    assert!(set.keys.is_empty());
}

#[tokio::test]
async fn rs256_and_eddsa_tokens_verify_with_the_published_key_alone() {
    let db = TestDatabase::new().await;
    for alg in [Alg::RS256, Alg::EdDSA] {
        let (key, pem) = PrivateKey::generate(alg).unwrap();
        let (previous, previous_pem) = PrivateKey::generate(alg).unwrap();
        let settings = [
            ("JWT_ALG", alg.as_str()),
            ("JWT_PRIVATE_KEY", pem.expose()),
            ("JWT_PRIVATE_KEY_PREVIOUS", previous_pem.expose()),
        ];
        let app = app(&db, &settings);
        let (r, set) = get_jwks(&app).await;
        assert!(!String::from_utf8_lossy(&r.raw).contains("PRIVATE"));
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [key.kid(), previous.kid()], "{alg}: signing key first, previous published");
        assert!(set.keys.iter().all(|k| k.alg == alg.as_str() && k.use_ == "sig"));

        let token = token(&app, &format!("jwks{}", alg.as_str().to_lowercase())).await;
        let header = UnverifiedToken::parse(&token).unwrap();
        assert_eq!((header.alg(), header.kid()), (alg, key.kid()));
        let verifier = Keyring::from_jwks(&set).unwrap();
        let claims = verifier.verify_str(&token, &TokenRules::default()).unwrap();
        assert_eq!(claims.username, format!("jwks{}", alg.as_str().to_lowercase()));
        // auth-svc's own validation accepts it too.
        let bearer = format!("Bearer {token}");
        let r = send(&app, request(Method::POST, "/auth/validate", &[("authorization", &bearer)], None)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.raw));
    }
}

#[tokio::test]
async fn forged_tokens_are_refused_by_validate_with_their_reason() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let db = TestDatabase::new().await;
    let (key, pem) = PrivateKey::generate(Alg::RS256).unwrap();
    let app = app(&db, &[("JWT_ALG", "RS256"), ("JWT_PRIVATE_KEY", pem.expose())]);
    let (_, set) = get_jwks(&app).await;
    let claims = platform::keyring::Claims::new(1, "u", "u@example.com", chrono::Utc::now().timestamp(), 600);
    // HS256 with the published modulus as the HMAC secret, naming the RSA key.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    let n = set.keys[0].n.clone().unwrap();
    let confused = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(n.as_bytes())).unwrap();
    // A real RS256 signature under headers we refuse.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let with_header = |h: serde_json::Value| format!("{}.{payload}.AAAA", URL_SAFE_NO_PAD.encode(h.to_string()));
    let kid = key.kid();
    let cases = [
        (confused, "wrong_algorithm"),
        (with_header(json!({"alg": "none", "kid": kid})), "wrong_algorithm"),
        (with_header(json!({"alg": "RS256", "kid": kid, "crit": ["exp"]})), "unsupported_header"),
        (with_header(json!({"alg": "RS256", "kid": kid, "jku": "http://127.0.0.1:1/jwks"})), "unsupported_header"),
    ];
    for (token, reason) in cases {
        let bearer = format!("Bearer {token}");
        let r = send(&app, request(Method::POST, "/auth/validate", &[("authorization", &bearer)], None)).await;
        r.assert_error(StatusCode::UNAUTHORIZED);
        assert_eq!(r.json["reason"], reason, "{token}");
    }
}

#[test]
fn the_jwks_route_is_in_the_openapi_document() {
    let (_, doc) = auth_svc::api();
    let json = serde_json::to_value(&doc).unwrap();
    assert!(json["paths"][JWKS]["get"].is_object(), "{}", json["paths"]);
    assert!(json["components"]["schemas"]["PublicJwk"].is_object());
}
