//! auth-svc in RS256 mode with its key in Secrets Manager (moto on loopback): the key secret's
//! versions are published at once, a new `AWSCURRENT` signs only once it is
//! `JWT_PUBLISH_DELAY_SECS` old (the previous key signs until then), and a version whose key is
//! of another algorithm is refused (the last good keyring stays).

use std::time::{Duration, Instant};

use platform::keyring::{Alg, Jwks, PrivateKey, UnverifiedToken};
use testkit::TestDatabase;
use testkit::harness::*;
use testkit::launch::{AwsEndpoint, Throttles};

const NAME: &str = "task-mgmt/jwt-signing-key";
const PUBLISH_DELAY_SECS: u64 = 12;

fn key_document(alg: Alg) -> (String, String) {
    let (key, pem) = PrivateKey::generate(alg).unwrap();
    let doc = serde_json::json!({"alg": alg.as_str(), "private_key": pem.expose()}).to_string();
    (key.kid().to_owned(), doc)
}

async fn kids(auth: &RunningService) -> Vec<String> {
    let set: Jwks =
        client().get(auth.url_for("/auth/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    set.keys.into_iter().map(|k| k.kid).collect()
}

async fn signing_kid(auth: &RunningService, name: &str) -> String {
    let (token, _) = login(auth, name).await;
    UnverifiedToken::parse(&token).unwrap().kid().to_owned()
}

#[tokio::test]
async fn a_new_key_is_published_at_once_and_signs_after_the_publish_delay() {
    let moto = start_moto().await;
    let db = TestDatabase::new().await;
    let sm = moto.client();
    let (first, doc) = key_document(Alg::RS256);
    sm.create_secret().name(NAME).secret_string(doc).send().await.unwrap();
    let keyring = KeyringSource::KeySecret {
        alg: Alg::RS256,
        arn: NAME.into(),
        endpoint: AwsEndpoint::stand_in(&moto.endpoint),
        publish_delay_secs: Some(PUBLISH_DELAY_SECS),
    };
    let mut settings = auth_settings(&db.url, keyring);
    settings.keyring_refresh_secs = Some(5);
    // One login per poll below, all from one address.
    settings.throttles = Throttles::off();
    let auth = start_auth_with(settings).await;
    // The first key signs at once: there is no other.
    assert_eq!(kids(&auth).await, vec![first.clone()]);
    assert_eq!(signing_kid(&auth, "sk0").await, first);

    let (second, doc) = key_document(Alg::RS256);
    sm.put_secret_value().secret_id(NAME).secret_string(doc).send().await.unwrap();
    let put = Instant::now();
    // Published within a refresh, while the first key still signs.
    while kids(&auth).await != [first.clone(), second.clone()] {
        assert!(put.elapsed() < Duration::from_secs(10), "new version not published: {:?}", kids(&auth).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(put.elapsed() < Duration::from_secs(PUBLISH_DELAY_SECS - 2), "published too late to tell the rule");
    assert_eq!(signing_kid(&auth, "sk1").await, first, "the new key must not sign before the publish delay");
    // Signs once the delay has passed (at the next refresh).
    let mut n = 2;
    loop {
        let kid = signing_kid(&auth, &format!("sk{n}")).await;
        n += 1;
        if kid == second {
            break;
        }
        assert_eq!(kid, first);
        assert!(put.elapsed() < Duration::from_secs(PUBLISH_DELAY_SECS + 15), "the new key never signed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(put.elapsed() >= Duration::from_secs(PUBLISH_DELAY_SECS - 1), "signed after {:?}", put.elapsed());
    assert_eq!(kids(&auth).await, [second.clone(), first.clone()], "the retired key stays published");

    // A version holding a key of another algorithm: refused, the last good keyring stays.
    let (_, doc) = key_document(Alg::EdDSA);
    sm.put_secret_value().secret_id(NAME).secret_string(doc).send().await.unwrap();
    let failures =
        || async { sample(&samples(&metrics_text(&auth).await), r#"auth_keyring_refreshes_total{outcome="failure"}"#) };
    let t = Instant::now();
    while failures().await < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(15), "the EdDSA version was not refused");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(kids(&auth).await, [second.clone(), first]);
    assert_eq!(signing_kid(&auth, &format!("sk{n}")).await, second);
}
