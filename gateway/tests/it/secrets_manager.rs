//! The keyring from Secrets Manager (moto on loopback, reached through the standard
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`): not ready until loaded, picks up a new version, keeps
//! the previous one for tokens still in flight, keeps the last good keyring when it cannot read.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use testkit::harness::*;
use testkit::{TestDatabase, wait};

const S1: &str = "sm-secret-one-0123456789abcdef0123456789abcdef";
const S2: &str = "sm-secret-two-0123456789abcdef0123456789abcdef";
const SECRET_NAME: &str = "task-mgmt/jwt-secret";
/// auth-svc's secret where it only serves the revocation list: shared with no token here.
const STRANGER: &str = "stranger-secret-0123456789abcdef0123456789ab";

async fn status(c: &reqwest::Client, url: &str, token: &str) -> u16 {
    c.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keyring_is_loaded_from_secrets_manager_and_refreshed_on_a_new_version() {
    let mut moto = start_moto().await;
    let db = TestDatabase::new().await;
    let task = start_task(&db.url).await;
    // auth-svc serves the revocation list (without one the gateway refuses every token) but
    // holds neither S1 nor S2: every decision below is the gateway's own keyring's.
    let stranger = start_auth(&db.url, STRANGER, None).await;
    let toml = sidecar(|f| f.jwt.refresh_interval_secs = 1);
    let gateway = start_gateway(toml, task.addr, &stranger.url(), moto.keyring(SECRET_NAME), false).await;
    let c = client();
    let url = gateway.url_for("/tasks");
    let ready = gateway.metrics_url("/ready").unwrap();

    // The secret does not exist yet: once the gateway has tried to load it and failed, it is
    // not ready, and requests cannot be decided (503, not 401).
    wait::until("a failed keyring load", Duration::from_secs(20), || async {
        sample(&samples(&metrics_text(&gateway).await), r#"gateway_keyring_refreshes_total{outcome="failure"}"#) >= 1.0
    })
    .await;
    assert_eq!(c.get(&ready).send().await.unwrap().status(), 503);
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 503);

    let sm = moto.client();
    sm.create_secret()
        .name(SECRET_NAME)
        .secret_string(format!(r#"{{"secret":"{S1}","expiration":"3600"}}"#))
        .send()
        .await
        .unwrap();
    wait::until("the gateway ready after the secret was created", Duration::from_secs(20), || async {
        c.get(&ready).send().await.unwrap().status() == 200
    })
    .await;
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);
    // S2's kid: not in the keyring just re-read, nor in auth-svc's: refused.
    assert_eq!(status(&c, &url, &mint(S2, 1, 600)).await, 401);

    // Rotation: a new version becomes AWSCURRENT, the old one AWSPREVIOUS.
    sm.put_secret_value()
        .secret_id(SECRET_NAME)
        .secret_string(format!(r#"{{"secret":"{S2}","expiration":3600}}"#))
        .send()
        .await
        .unwrap();
    wait::until("the new secret version picked up", Duration::from_secs(15), || async {
        match status(&c, &url, &mint(S2, 1, 600)).await {
            200 => true,
            401 | 503 => false,
            other => panic!("unexpected status {other} while waiting for the refresh"),
        }
    })
    .await;
    // Tokens signed with the previous version keep working during the rotation.
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);

    // Secrets Manager unreachable: refreshes fail, the last good keyring stays.
    moto.process.kill();
    let before =
        sample(&samples(&metrics_text(&gateway).await), r#"gateway_keyring_refreshes_total{outcome="failure"}"#);
    wait::until("a failed refresh recorded", Duration::from_secs(20), || async {
        sample(&samples(&metrics_text(&gateway).await), r#"gateway_keyring_refreshes_total{outcome="failure"}"#)
            > before
    })
    .await;
    assert_eq!(status(&c, &url, &mint(S2, 1, 600)).await, 200);
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);
    assert_eq!(c.get(&ready).send().await.unwrap().status(), 200);
    let m = samples(&metrics_text(&gateway).await);
    assert!(sample(&m, r#"gateway_keyring_refreshes_total{outcome="success"}"#) >= 2.0);
    assert_eq!(sample(&m, "gateway_keyring_loaded"), 1.0);
}

#[tokio::test]
async fn a_new_kid_triggers_an_early_keyring_refresh_and_is_then_verified_locally() {
    let moto = start_moto().await;
    let sm = moto.client();
    let name = "task-mgmt/jwt-secret-early";
    sm.create_secret()
        .name(name)
        .secret_string(format!(r#"{{"secret":"{S1}","expiration":"3600"}}"#))
        .send()
        .await
        .unwrap();
    let db = TestDatabase::new().await;
    // auth-svc already signs with S2; the gateway's periodic refresh is far away (300 s).
    let auth = start_auth(&db.url, S2, Some(S1)).await;
    let task = start_task(&db.url).await;
    let gateway =
        start_gateway(test_sidecar(), task.addr, &format!("http://{}", auth.addr), moto.keyring(name), true).await;
    sm.put_secret_value()
        .secret_id(name)
        .secret_string(format!(r#"{{"secret":"{S2}","expiration":"3600"}}"#))
        .send()
        .await
        .unwrap();

    let (token, user_id) = login(&auth, "early").await;
    let c = client();
    let url = gateway.url_for("/tasks");
    // The first token with the new kid waits for the refresh it triggers, then verifies here.
    assert_eq!(status(&c, &url, &token).await, 200);
    let m = samples(&metrics_text(&gateway).await);
    assert!(sample(&m, r#"gateway_keyring_refreshes_total{outcome="success"}"#) >= 2.0, "an early refresh ran");
    for _ in 0..5 {
        assert_eq!(status(&c, &url, &mint(S2, user_id, 600)).await, 200);
    }
    let m = samples(&metrics_text(&gateway).await);
    assert_eq!(sample(&m, r#"gateway_fallback_calls_total{outcome="valid"}"#), 0.0, "auth-svc was never asked");
}
