//! The keyring from Secrets Manager (moto on loopback, reached through the standard
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`): not ready until loaded, picks up a new version, keeps
//! the previous one for tokens still in flight, keeps the last good keyring when it cannot read.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use common::*;
use devstack::postgres::free_port;
use devstack::postgres::testing::TestDatabase;
use devstack::process::{Output, Process};

const S1: &str = "sm-secret-one-0123456789abcdef0123456789abcdef";
const S2: &str = "sm-secret-two-0123456789abcdef0123456789abcdef";
const SECRET_NAME: &str = "task-mgmt/jwt-secret";

/// `moto_server`: `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`, else PATH.
fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

async fn start_moto() -> (Process, String) {
    let port = free_port().unwrap();
    let log = log_dir().join(format!("moto-{port}.log"));
    let process = Process::spawn(
        "moto_server",
        &moto_server(),
        &["-H", "127.0.0.1", "-p", &port.to_string()],
        &[],
        &Output::File(log),
    )
    .unwrap_or_else(|e| panic!("{e:#}: install moto with `pip install 'moto[server]'` or set MOTO_SERVER"));
    devstack::postgres::wait_for_port(port, Duration::from_secs(60)).unwrap();
    (process, format!("http://127.0.0.1:{port}"))
}

fn sm_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

async fn status(c: &reqwest::Client, url: &str, token: &str) -> u16 {
    c.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keyring_is_loaded_from_secrets_manager_and_refreshed_on_a_new_version() {
    let (mut moto, endpoint) = start_moto().await;
    let db = TestDatabase::new().await;
    let task = start_task(&db.url).await;
    // auth-svc is deliberately absent: every decision below must be local.
    let dead_auth = format!("http://127.0.0.1:{}", free_port().unwrap());
    let toml = GatewayToml { refresh_interval_secs: 1, ..Default::default() };
    let gateway = start_gateway(&toml, task.addr, &dead_auth, secrets_manager(SECRET_NAME, &endpoint), false).await;
    let c = client();
    let url = gateway.url("/tasks");
    let ready = format!("http://{}/ready", gateway.metrics);

    // The secret does not exist yet: not ready, and requests cannot be decided (503, not 401).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.get(&ready).send().await.unwrap().status(), 503);
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 503);

    let sm = sm_client(&endpoint);
    sm.create_secret()
        .name(SECRET_NAME)
        .secret_string(format!(r#"{{"secret":"{S1}","expiration":"3600"}}"#))
        .send()
        .await
        .unwrap();
    let t = Instant::now();
    while c.get(&ready).send().await.unwrap().status() != 200 {
        assert!(t.elapsed() < Duration::from_secs(20), "gateway not ready after the secret was created");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);
    assert_eq!(status(&c, &url, &mint(S2, 1, 600)).await, 503, "S2's kid is unknown and auth-svc is down");

    // Rotation: a new version becomes AWSCURRENT, the old one AWSPREVIOUS.
    sm.put_secret_value()
        .secret_id(SECRET_NAME)
        .secret_string(format!(r#"{{"secret":"{S2}","expiration":3600}}"#))
        .send()
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        match status(&c, &url, &mint(S2, 1, 600)).await {
            200 => break,
            503 => {}
            other => panic!("unexpected status {other} while waiting for the refresh"),
        }
        assert!(t.elapsed() < Duration::from_secs(15), "new secret version not picked up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Tokens signed with the previous version keep working during the rotation.
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);

    // Secrets Manager unreachable: refreshes fail, the last good keyring stays.
    moto.kill();
    let before = sample(
        &parse_exposition(&gateway.metrics_text().await),
        r#"gateway_keyring_refreshes_total{outcome="failure"}"#,
    );
    let t = Instant::now();
    loop {
        let m = parse_exposition(&gateway.metrics_text().await);
        if sample(&m, r#"gateway_keyring_refreshes_total{outcome="failure"}"#) > before {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no failed refresh recorded");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status(&c, &url, &mint(S2, 1, 600)).await, 200);
    assert_eq!(status(&c, &url, &mint(S1, 1, 600)).await, 200);
    assert_eq!(c.get(&ready).send().await.unwrap().status(), 200);
    let m = parse_exposition(&gateway.metrics_text().await);
    assert!(sample(&m, r#"gateway_keyring_refreshes_total{outcome="success"}"#) >= 2.0);
    assert_eq!(sample(&m, "gateway_keyring_loaded"), 1.0);
}

#[tokio::test]
async fn a_new_kid_accepted_by_auth_svc_triggers_an_early_keyring_refresh() {
    let (_moto, endpoint) = start_moto().await;
    let sm = sm_client(&endpoint);
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
    let gateway = start_gateway(
        &GatewayToml::default(),
        task.addr,
        &format!("http://{}", auth.addr),
        secrets_manager(name, &endpoint),
        true,
    )
    .await;
    sm.put_secret_value()
        .secret_id(name)
        .secret_string(format!(r#"{{"secret":"{S2}","expiration":"3600"}}"#))
        .send()
        .await
        .unwrap();

    let (token, user_id) = login(&auth, "early").await;
    let c = client();
    let url = gateway.url("/tasks");
    assert_eq!(status(&c, &url, &token).await, 200, "validated through auth-svc");
    let t = Instant::now();
    loop {
        let m = parse_exposition(&gateway.metrics_text().await);
        if sample(&m, r#"gateway_keyring_refreshes_total{outcome="success"}"#) >= 2.0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "no early refresh after the fallback saw a new kid");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New S2 tokens are now verified locally: no further auth-svc calls.
    for _ in 0..5 {
        assert_eq!(status(&c, &url, &mint(S2, user_id, 600)).await, 200);
    }
    let m = parse_exposition(&gateway.metrics_text().await);
    assert_eq!(sample(&m, r#"gateway_fallback_calls_total{outcome="valid"}"#), 1.0);
}
