//! The RS256 and EdDSA signing modes on the whole local stack: auth-svc alone holds the private
//! key, the gateways verify with its JWKS. The guide's flow (register, login, create a task)
//! through the front door in each mode (the token also checked by docs/examples/verify_jwt.py,
//! PyJWT against the front door's JWKS), and a signing-key rotation under steady load in RS256
//! as the runbook does it (one `put-secret-value`, no restart): no request fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devstack::launch::{AwsEndpoint, KeyringSource};
use devstack::stack::Stack;
use e2e::rotation_load::{RotationLoad, failed, requests_with};
use e2e::{Http, call, client, login, options, register};
use platform::keyring::{Alg, Jwks, Keyring, PrivateKey, TokenRules, UnverifiedToken};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::moto::Moto;

fn header(token: &str) -> (Alg, String) {
    let t = UnverifiedToken::parse(token).unwrap();
    (t.alg(), t.kid().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_create_a_task_in_rs256_and_eddsa() {
    for alg in [Alg::RS256, Alg::EdDSA] {
        let mut opts = options();
        opts.jwt_alg = alg;
        let stack = Stack::start(opts).await.expect("the stack starts");
        assert_eq!(stack.jwt_alg(), alg);
        let base = stack.url();
        let c = client();
        let name = format!("sig{}", alg.as_str().to_lowercase());
        register(&Http::new(&c, &base), &name).await;
        let token = login(&Http::new(&c, &base), &name).await;
        let (token_alg, kid) = header(&token);
        assert_eq!(token_alg, alg);

        // The JWKS is public at the front door and verifies the token on its own.
        let r = c.get(format!("{base}/auth/.well-known/jwks.json")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let jwks: Jwks = r.json().await.unwrap();
        assert_eq!(jwks.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), [kid.as_str()]);
        assert!(Keyring::from_jwks(&jwks).unwrap().verify_str(&token, &TokenRules::default()).is_ok());

        let r = call(&c, Method::POST, &format!("{base}/tasks"), Some(&token), Some(json!({"title": "signed"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{alg}: {}", r.json);
        let r = call(&c, Method::GET, &format!("{base}/tasks"), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["tasks"][0]["title"], "signed");
        // A token of another key under the same kid: refused by the gateway.
        let (other, _) = PrivateKey::generate(alg).unwrap();
        let forged_ring = Keyring::signing(&other, &[]).unwrap();
        let forged = forged_ring.issue(&platform::keyring::Claims::new(1, &name, "x@example.com", now(), 600)).unwrap();
        let forged = with_kid(&forged, &kid);
        let r = call(&c, Method::GET, &format!("{base}/tasks"), Some(&forged), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{alg}: {}", r.json);

        // The documented outside verifier (PyJWT against the front door's JWKS) agrees.
        let jwks_url = format!("{base}/auth/.well-known/jwks.json");
        let (code, stdout, stderr) = verify_jwt_py(&jwks_url, &token).await;
        assert_eq!(code, 0, "{alg}: {stderr}");
        let claims: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(claims["username"], name.as_str());
        let (code, _, stderr) = verify_jwt_py(&jwks_url, &forged).await;
        assert_eq!(code, 1, "{alg}: the forged token must be refused: {stderr}");
        assert!(stderr.contains("refused"), "{stderr}");
        stack.shutdown().await.unwrap();
    }
}

/// The project's Python (`$VENV`, else the repository's `.venv`, where scripts/setup.sh
/// installs PyJWT from scripts/requirements.txt).
fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| devstack::stack::repo_root().join(".venv"));
    venv.join("bin/python")
}

/// Runs docs/examples/verify_jwt.py: (exit code, stdout, stderr).
async fn verify_jwt_py(jwks_url: &str, token: &str) -> (i32, String, String) {
    let script = devstack::stack::repo_root().join("docs/examples/verify_jwt.py");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python()).arg(&script).arg(jwks_url).arg(token).output(),
    )
    .await
    .expect("verify_jwt.py finished within 60 s")
    .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh test installs the venv)", python().display()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `token` with its header's kid replaced by `kid` (its signature no longer matches anything).
fn with_kid(token: &str, kid: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (head, rest) = token.split_once('.').unwrap();
    let mut h: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap();
    h["kid"] = json!(kid);
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string()))
}

const KEY_NAME: &str = "e2e/jwt-signing-key";
/// The new key signs this long after it is put; above auth-svc's 5 s refresh and the
/// gateways' JWKS refresh period (the rule of JWT_PUBLISH_DELAY_SECS).
const PUBLISH_DELAY_SECS: u64 = 8;

fn key_document(alg: Alg) -> String {
    let (_, pem) = PrivateKey::generate(alg).unwrap();
    json!({"alg": alg.as_str(), "private_key": pem.expose()}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rs256_key_rotation_under_steady_load_fails_no_request() {
    let moto = Moto::start(&std::env::temp_dir()).await.unwrap();
    let sm = moto.client();
    sm.create_secret().name(KEY_NAME).secret_string(key_document(Alg::RS256)).send().await.unwrap();
    let mut opts = options();
    opts.keyring = Some(KeyringSource::KeySecret {
        alg: Alg::RS256,
        arn: KEY_NAME.into(),
        endpoint: AwsEndpoint::stand_in(&moto.endpoint),
        publish_delay_secs: Some(PUBLISH_DELAY_SECS),
    });
    opts.auth_keyring_refresh_secs = vec![5, 5];
    opts.sidecar_set.push(("jwt.refresh_interval_secs".into(), "5".into()));
    let stack = Stack::start(opts).await.expect("the stack starts");
    let base = stack.url();
    let c = client();
    let users = ["rsrot1", "rsrot2", "rsrot3"];
    for u in users {
        register(&Http::new(&c, &base), u).await;
    }
    let mut tokens = Vec::new();
    for u in users {
        tokens.push(login(&Http::new(&c, &base), u).await);
    }
    let load = RotationLoad::start(&base, tokens);
    let old_kid = load.old_kid().to_owned();
    load.wait_for_old_key_load(20).await;

    // The rotation: one put-secret-value of a new RS256 key.
    sm.put_secret_value().secret_id(KEY_NAME).secret_string(key_document(Alg::RS256)).send().await.unwrap();
    let rotated = Instant::now();
    let mut issued_after: BTreeMap<String, u32> = BTreeMap::new();
    while rotated.elapsed() < Duration::from_secs(PUBLISH_DELAY_SECS + 25) {
        let n = issued_after.values().sum::<u32>() as usize;
        let token = login(&Http::new(&c, &base), users[n % users.len()]).await;
        let kid = header(&token).1;
        if kid != old_kid {
            assert!(
                rotated.elapsed() >= Duration::from_secs(PUBLISH_DELAY_SECS - 1),
                "the new key signed {:?} after it was put, before the publish delay",
                rotated.elapsed()
            );
        }
        *issued_after.entry(kid).or_default() += 1;
        load.add_token(token);
        if issued_after.len() == 2 && issued_after.iter().any(|(k, n)| *k != old_kid && *n >= 4) {
            break;
        }
        // One login every 2 s, the refill rate of auth-svc's default per-address budget
        // (CLIENT_RATE_PER_MIN 30, CLIENT_BURST 10; every client here is 127.0.0.1): the six
        // sign-ups and logins above took six of the burst, and a loop at one login a second
        // spent the rest in about ten turns, then got 429 while waiting for the new key.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Load keeps running with both keys' tokens in the pool: for 3 s, and until each key has
    // carried at least 20 requests since.
    load.run_both_keys_for(Duration::from_secs(3), 20).await;
    let seen = load.finish().await;
    let by_key = |k: &str| requests_with(&seen, k);
    let failed = failed(&seen);
    let new_kid = issued_after.keys().find(|k| **k != old_kid).cloned().unwrap_or_default();
    eprintln!(
        "RS256 rotation under load: {} requests with old-key tokens, {} with new-key tokens, {failed} failed; \
         statuses {seen:?}; logins after the rotation by key id {issued_after:?}",
        by_key(&old_kid),
        by_key(&new_kid),
    );
    assert_eq!(failed, 0, "no request may fail during a rotation: {seen:?}");
    assert!(!new_kid.is_empty(), "the new key never signed: {issued_after:?}");
    assert!(by_key(&new_kid) >= 20 && by_key(&old_kid) >= 20, "both keys carried load: {seen:?}");
    stack.shutdown().await.unwrap();
}
