//! Secrets Manager for tests and local experiments: `moto_server` (PyPI `moto[server]`, in the
//! project's `.venv`) on loopback, started through the launcher, and an SDK client for it. The
//! services reach it through the standard `AWS_ENDPOINT_URL_SECRETS_MANAGER`
//! ([`devstack::launch::KeyringSource::SecretsManager`]); production code has no test hooks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

use devstack::launch::{AwsEndpoint, KeyringSource, Launch, Probe, loopback};
use devstack::postgres::free_port;
use devstack::process::{Output, Process};

/// `moto_server`: `$MOTO_SERVER`, else the workspace's `.venv/bin/moto_server`, else `PATH`.
pub fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = devstack::stack::repo_root().join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// A running moto_server. Killed when dropped.
pub struct Moto {
    pub process: Process,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a free loopback port, its log in `log_dir`, and waits until it accepts
    /// connections. The error says how to install it.
    pub async fn start(log_dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let addr = loopback(port);
        let launch = Launch::new("moto_server", &moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .output(Output::File(log_dir.join(format!("moto-{port}.log"))))
            .ready(vec![Probe::Tcp(addr)])
            .poll_every(Duration::from_millis(50));
        let process = launch.start(Duration::from_secs(60)).await.context(
            "moto_server (Secrets Manager stand-in): run scripts/setup.sh test, or `pip install 'moto[server]'` and set MOTO_SERVER",
        )?;
        Ok(Self { process, endpoint: format!("http://{addr}") })
    }

    /// An SDK client for this moto (static test credentials, us-east-1).
    pub fn client(&self) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// The keyring source that reads secret `name` from this moto.
    pub fn keyring(&self, name: &str) -> KeyringSource {
        KeyringSource::SecretsManager { arn: name.to_owned(), endpoint: AwsEndpoint::stand_in(&self.endpoint) }
    }

    /// Creates secret `name` with `secret` (`{"secret": ...}`) as its AWSCURRENT version.
    pub async fn create_secret(&self, name: &str, secret: &str) -> Result<()> {
        self.client().create_secret().name(name).secret_string(secret_string(secret)).send().await?;
        Ok(())
    }

    /// Rotates `name`: `secret` becomes AWSCURRENT, the previous current AWSPREVIOUS (what
    /// `aws secretsmanager put-secret-value` does).
    pub async fn rotate(&self, name: &str, secret: &str) -> Result<()> {
        self.client().put_secret_value().secret_id(name).secret_string(secret_string(secret)).send().await?;
        Ok(())
    }
}

fn secret_string(secret: &str) -> String {
    serde_json::json!({ "secret": secret, "expiration": "3600" }).to_string()
}
