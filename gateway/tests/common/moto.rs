//! moto_server on loopback as Secrets Manager, and an SDK client for it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use devstack::postgres::free_port;
use devstack::process::{Output, Process};

use super::log_dir;

/// `moto_server`: `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`, else PATH.
pub fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

pub async fn start_moto() -> (Process, String) {
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

pub fn sm_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// Creates the secret `name` with `secret` as its first (AWSCURRENT) version.
pub async fn create_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, secret: &str) {
    sm.create_secret().name(name).secret_string(format!(r#"{{"secret":"{secret}"}}"#)).send().await.unwrap();
}

/// Rotates `name`: `secret` becomes AWSCURRENT, the previous current AWSPREVIOUS.
pub async fn rotate(sm: &aws_sdk_secretsmanager::Client, name: &str, secret: &str) {
    sm.put_secret_value().secret_id(name).secret_string(format!(r#"{{"secret":"{secret}"}}"#)).send().await.unwrap();
}
