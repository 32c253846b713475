//! Key rotation through Secrets Manager (moto) as operators do it, with the real binaries:
//! a key id the gateway does not hold makes it re-read its own keyring; auth-svc's "unknown key
//! id" is not taken as proof until that re-read happened (503, not 401); a flood of made-up key
//! ids cannot stop a real new key from being learnt; a key that leaves the keyring takes its
//! cached tokens with it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::TestDatabase;
use testkit::harness::*;
use testkit::wait;
use tokio::task::JoinSet;

const S1: &str = "rotation-one-0123456789abcdef0123456789abcdef";
const S2: &str = "rotation-two-0123456789abcdef0123456789abcdef";
const S3: &str = "rotation-three-0123456789abcdef0123456789abcdef";

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unknown_to_auth_svc_is_not_proof_while_our_keyring_cannot_be_reread() {
    let mut moto = start_moto().await;
    moto.create_secret("rot/pending", S1).await.unwrap();
    let db = TestDatabase::new().await;
    // auth-svc holds S1 only; the gateway reads S1 from Secrets Manager.
    let auth = start_auth(&db.url, S1, None).await;
    let task = start_task(&db.url).await;
    let toml = sidecar(|f| f.jwt.unknown_kid_wait_ms = 500);
    let gateway = start_gateway(toml, task.addr, &auth.url(), moto.keyring("rot/pending"), true).await;
    let c = client();
    let url = gateway.url_for("/tasks");

    // Secrets Manager is gone: the gateway cannot re-read its keyring. A token with a kid that
    // neither it nor auth-svc holds (S2, e.g. a rotation auth-svc has not seen yet either)
    // cannot be decided: 503 with Retry-After, never 401.
    moto.process.kill();
    let r = c.get(&url).bearer_auth(mint(S2, 1, 600)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let m = samples(&metrics_text(&gateway).await);
    assert_eq!(sample(&m, r#"gateway_auth_decisions_total{reason="keyring_pending",result="unavailable"}"#), 1.0);
    // Tokens of the key it holds are unaffected.
    assert_eq!(get(&c, &url, &mint(S1, 1, 600)).await.0, 200);
}

#[tokio::test]
async fn a_key_dropped_by_a_refresh_takes_its_cached_tokens_with_it() {
    let moto = start_moto().await;
    moto.create_secret("rot/drop", S1).await.unwrap();
    let db = TestDatabase::new().await;
    let task = start_task(&db.url).await;
    // auth-svc holds none of S1..S3: it serves the revocation list, and says "unknown key id".
    let stranger = start_auth(&db.url, "stranger-secret-0123456789abcdef0123456789ab", None).await;
    let toml = sidecar(|f| f.jwt.refresh_interval_secs = 1);
    let gateway = start_gateway(toml, task.addr, &stranger.url(), moto.keyring("rot/drop"), true).await;
    let c = client();
    let url = gateway.url_for("/tasks");
    let old = mint(S1, 1, 600);
    assert_eq!(get(&c, &url, &old).await.0, 200);
    assert_eq!(get(&c, &url, &old).await.0, 200, "now a cache hit");

    // Two rotations: S1 is neither AWSCURRENT nor AWSPREVIOUS any more.
    moto.rotate("rot/drop", S2).await.unwrap();
    moto.rotate("rot/drop", S3).await.unwrap();
    let rotated = Instant::now();
    loop {
        let (status, body) = get(&c, &url, &old).await;
        if status == 401 {
            assert_eq!(body["reason"], "unknown_kid");
            break;
        }
        assert_eq!(status, 200);
        // One refresh interval (1 s) plus the refresh itself.
        assert!(rotated.elapsed() < Duration::from_secs(4), "the dropped key's token is still served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("dropped key's cached token refused {:?} after the rotation", rotated.elapsed());
    assert_eq!(get(&c, &url, &mint(S3, 1, 600)).await.0, 200);
    assert_eq!(get(&c, &url, &mint(S2, 1, 600)).await.0, 200, "AWSPREVIOUS still verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_made_up_kids_cannot_stop_a_real_new_key_from_being_learnt() {
    let moto = start_moto().await;
    moto.create_secret("rot/flood", S1).await.unwrap();
    let db = TestDatabase::new().await;
    let auth = start_auth(&db.url, S1, None).await;
    let task = start_task(&db.url).await;
    // The periodic re-read is far away: only the on-demand one can learn S2. The fallback
    // budget is small; the flood below runs at several times it.
    let toml = sidecar(|f| {
        f.jwt.refresh_interval_secs = 3600;
        f.auth.rate_limit_per_sec = 5;
        f.auth.rate_limit_burst = 5;
        f.jwt.min_refresh_gap_ms = 1000;
    });
    let gateway = Arc::new(start_gateway(toml, task.addr, &auth.url(), moto.keyring("rot/flood"), true).await);
    let c = client();
    let url = Arc::new(gateway.url_for("/tasks"));

    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = JoinSet::new();
    for worker in 0..16 {
        let (c, url, stop) = (c.clone(), url.clone(), stop.clone());
        flood.spawn(async move {
            let mut counts = HashMap::<u16, u32>::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let secret = format!("made-up-{worker}-{i}-0123456789abcdef0123456789");
                let status = c.get(url.as_str()).bearer_auth(mint(&secret, 1, 600)).send().await.unwrap().status();
                *counts.entry(status.as_u16()).or_default() += 1;
                i += 1;
            }
            counts
        });
    }
    // The rotation lands while the flood is already over the fallback budget.
    wait::until("the flood over the fallback budget", Duration::from_secs(20), || async {
        sample(&scrape(&gateway).await, r#"gateway_fallback_calls_total{outcome="rate_limited"}"#) > 0.0
    })
    .await;

    moto.rotate("rot/flood", S2).await.unwrap();
    let rotated = Instant::now();
    let genuine = mint(S2, 1, 600);
    let mut first_ok = None;
    let mut genuine_statuses = HashMap::<u16, u32>::new();
    while rotated.elapsed() < Duration::from_secs(8) {
        let (status, _) = get(&c, &url, &genuine).await;
        *genuine_statuses.entry(status).or_default() += 1;
        if status == 200 && first_ok.is_none() {
            first_ok = Some(rotated.elapsed());
        }
        if first_ok.is_some_and(|t| rotated.elapsed() > t + Duration::from_secs(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut flood_counts = HashMap::<u16, u32>::new();
    while let Some(res) = flood.join_next().await {
        for (s, n) in res.unwrap() {
            *flood_counts.entry(s).or_default() += n;
        }
    }
    let m = samples(&metrics_text(&gateway).await);
    let rate_limited = sample(&m, r#"gateway_fallback_calls_total{outcome="rate_limited"}"#);
    eprintln!(
        "flood statuses {flood_counts:?}, fallback rate-limited {rate_limited}; genuine S2 token: \
         statuses {genuine_statuses:?}, first 200 after {first_ok:?}"
    );
    assert!(flood_counts.keys().all(|s| *s == 401 || *s == 503), "{flood_counts:?}");
    assert!(rate_limited > 0.0, "the flood exceeded the fallback budget");
    // Within one refresh: the gap (1 s) plus the Secrets Manager read, with slack for the load.
    let learnt = first_ok.expect("the genuine new key was never accepted");
    assert!(learnt < Duration::from_secs(4), "{learnt:?}");
    assert!(genuine_statuses.keys().all(|s| *s == 200 || *s == 503), "{genuine_statuses:?}");
}
