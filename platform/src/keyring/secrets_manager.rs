//! The keyring from AWS Secrets Manager: the secret's `AWSCURRENT` version signs, its
//! `AWSPREVIOUS` version (present after the first rotation) only verifies.
//!
//! Read with the AWS SDK's standard credential and endpoint resolution, so on ECS the task role
//! is used and tests point it at moto with `AWS_ENDPOINT_URL_SECRETS_MANAGER`. Staging labels:
//! <https://docs.aws.amazon.com/secretsmanager/latest/userguide/whats-in-a-secret.html#term_version>.

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::Keyring;
use super::store::KeyringSource;
use crate::Secret;

/// The JSON document in the secret's `SecretString`: `{"secret": "<at least 32 bytes>"}`,
/// optionally with the guide's `"expiration"` (whole seconds, string or number; not used here).
#[derive(Debug, Deserialize)]
struct SecretDoc {
    secret: String,
    #[serde(default)]
    expiration: Option<StringOrNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    S(String),
    N(serde_json::Number),
}

/// Parses a `SecretString`. Errors describe the shape, never the value.
pub fn parse_secret_string(text: &str) -> Result<Secret, String> {
    let doc: SecretDoc = serde_json::from_str(text)
        .map_err(|_| "SecretString is not a JSON object with a \"secret\" string".to_owned())?;
    match &doc.expiration {
        None => {}
        Some(StringOrNumber::S(s)) if s.trim().parse::<u64>().is_ok() => {}
        Some(StringOrNumber::N(n)) if n.as_u64().is_some() => {}
        Some(_) => return Err("\"expiration\" must be a whole number of seconds (string or number)".to_owned()),
    }
    Ok(Secret::new(doc.secret))
}

/// `AWSCURRENT` + `AWSPREVIOUS` of one secret (name or ARN).
pub struct SecretsManagerSource {
    arn: String,
    client: OnceCell<aws_sdk_secretsmanager::Client>,
}

impl SecretsManagerSource {
    pub fn new(arn: impl Into<String>) -> Self {
        Self { arn: arn.into(), client: OnceCell::new() }
    }

    async fn client(&self) -> &aws_sdk_secretsmanager::Client {
        self.client
            .get_or_init(|| async {
                let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_secretsmanager::Client::new(&conf)
            })
            .await
    }

    /// The `SecretString` of the version labelled `stage` and its creation time (unix seconds,
    /// when Secrets Manager gives one); `None` when no version has that label.
    pub(crate) async fn version(&self, stage: &str) -> Result<Option<(Secret, Option<i64>)>, String> {
        let result = self.client().await.get_secret_value().secret_id(&self.arn).version_stage(stage).send().await;
        match result {
            Ok(out) => {
                let text = out.secret_string().ok_or_else(|| format!("{stage} has no SecretString"))?;
                Ok(Some((Secret::new(text), out.created_date().map(|d| d.secs()))))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(format!("{stage}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e))),
        }
    }

    async fn stage(&self, stage: &str) -> Result<Option<Secret>, String> {
        match self.version(stage).await? {
            Some((text, _)) => parse_secret_string(text.expose()).map(Some).map_err(|e| format!("{stage}: {e}")),
            None => Ok(None),
        }
    }

    /// The secret's name or ARN.
    pub(crate) fn arn(&self) -> &str {
        &self.arn
    }
}

#[async_trait]
impl KeyringSource for SecretsManagerSource {
    async fn load(&self) -> Result<Keyring, String> {
        let current = self.stage("AWSCURRENT").await?.ok_or_else(|| "AWSCURRENT version not found".to_owned())?;
        // AWSPREVIOUS is absent until the first rotation; any other failure fails the refresh
        // so a transient error never silently drops the previous key.
        let previous = self.stage("AWSPREVIOUS").await?;
        Keyring::new(&current, previous.as_ref()).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        format!("Secrets Manager secret {}", self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_accepts_string_or_number_expiration() {
        let s = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":"3600"}}"#)).unwrap().expose(), s);
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":3600}}"#)).is_ok());
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}"}}"#)).is_ok());
        assert!(parse_secret_string(&format!(r#"{{"secret":"{s}","expiration":"soon"}}"#)).is_err());
        let err = parse_secret_string(r#"{"token":"hunter2-hunter2"}"#).unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse_secret_string("not json").is_err());
    }
}
