//! A JWT secret rotation on the whole local stack, done as the runbook says (one
//! `put-secret-value`, no restart), under steady load: no request fails, whichever key signed
//! its token. auth-svc and the gateways read the keyring from Secrets Manager (moto); the two
//! auth-svc instances behind the one Cloud Map name hold different keyrings for a while (auth-1
//! re-reads every 5 s, auth-2 not for an hour), as during a real rolling refresh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use devstack::stack::Stack;
use e2e::{Http, call, client, login, options, register};
use platform::keyring::UnverifiedToken;
use reqwest::Method;
use testkit::moto::Moto;
use testkit::wait;

const SECRET_NAME: &str = "e2e/jwt-rotation";
const OLD: &str = "e2e-rotation-old-0123456789abcdef0123456789abcdef";
const NEW: &str = "e2e-rotation-new-0123456789abcdef0123456789abcdef";

fn kid(token: &str) -> String {
    UnverifiedToken::parse(token).unwrap().kid().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_under_steady_load_fails_no_request_for_tokens_of_either_key() {
    let moto = Moto::start(&std::env::temp_dir()).await.unwrap();
    moto.create_secret(SECRET_NAME, OLD).await.unwrap();
    let mut opts = options();
    opts.keyring = Some(moto.keyring(SECRET_NAME));
    opts.auth_keyring_refresh_secs = vec![5, 3600];
    let stack = Stack::start(opts).await.expect("the stack starts");
    let base = stack.url();
    let c = client();
    let users = ["rot1", "rot2", "rot3"];
    for u in users {
        register(&Http::new(&c, &base), u).await;
    }
    let mut tokens = Vec::new();
    for u in users {
        tokens.push(login(&Http::new(&c, &base), u).await);
    }
    let old_kid = kid(&tokens[0]);
    let pool = Arc::new(RwLock::new(tokens));

    // Steady load through the front door: both gateways, tokens of whatever key is in the pool.
    let stop = Arc::new(AtomicBool::new(false));
    // Requests sent with old-key and new-key tokens so far: what the waits below watch.
    let sent = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..6usize {
        let (c, base, pool, stop, sent) = (c.clone(), base.clone(), pool.clone(), stop.clone(), sent.clone());
        let old_kid = old_kid.clone();
        load.spawn(async move {
            let mut seen: BTreeMap<(String, u16), u32> = BTreeMap::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let token = {
                    let pool = pool.read().unwrap();
                    pool[i % pool.len()].clone()
                };
                let r = call(&c, Method::GET, &format!("{base}/tasks"), Some(&token), None).await;
                let token_kid = kid(&token);
                sent[usize::from(token_kid != old_kid)].fetch_add(1, Ordering::Relaxed);
                *seen.entry((token_kid, r.status.as_u16())).or_default() += 1;
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        });
    }
    let sent_with = |new_key: bool| sent[usize::from(new_key)].load(Ordering::Relaxed);
    wait::until("load with old-key tokens", Duration::from_secs(30), || {
        let n = sent_with(false);
        async move { n >= 20 }
    })
    .await;

    // The rotation: one put-secret-value.
    moto.rotate(SECRET_NAME, NEW).await.unwrap();
    let rotated = Instant::now();
    // New logins alternate over auth-1 (re-reads within 5 s) and auth-2 (still on the old key):
    // collect tokens of the new key and keep the old ones in the pool.
    let mut issued_after: BTreeMap<String, u32> = BTreeMap::new();
    while rotated.elapsed() < Duration::from_secs(12) {
        let token =
            login(&Http::new(&c, &base), users[issued_after.values().sum::<u32>() as usize % users.len()]).await;
        *issued_after.entry(kid(&token)).or_default() += 1;
        pool.write().unwrap().push(token);
        if issued_after.len() == 2 && issued_after.values().all(|n| *n >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Load keeps running with both keys' tokens in the pool: for 4 s, and until each key has
    // carried at least 20 requests since (what the assertions below need, on any machine).
    let (old_so_far, new_so_far) = (sent_with(false), sent_with(true));
    let window = Instant::now() + Duration::from_secs(4);
    wait::until("load with both keys' tokens after the rotation", Duration::from_secs(30), || {
        let done =
            Instant::now() >= window && sent_with(false) >= old_so_far + 20 && sent_with(true) >= new_so_far + 20;
        async move { done }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen: BTreeMap<(String, u16), u32> = BTreeMap::new();
    while let Some(r) = load.join_next().await {
        for (k, n) in r.unwrap() {
            *seen.entry(k).or_default() += n;
        }
    }
    let by_key = |k: &str| seen.iter().filter(|((kid, _), _)| kid == k).map(|(_, n)| n).sum::<u32>();
    let failed: u32 = seen.iter().filter(|((_, s), _)| *s != 200).map(|(_, n)| n).sum();
    let new_kid = issued_after.keys().find(|k| **k != old_kid).cloned().unwrap_or_default();
    eprintln!(
        "rotation under load: {} requests with old-key tokens, {} with new-key tokens, {failed} failed; \
         statuses {seen:?}; logins after the rotation by key id {issued_after:?}",
        by_key(&old_kid),
        by_key(&new_kid),
    );
    assert_eq!(failed, 0, "no request may fail during a rotation: {seen:?}");
    assert!(!new_kid.is_empty(), "auth-1 never signed with the new key: {issued_after:?}");
    assert!(issued_after.contains_key(&old_kid), "auth-2 kept the old keyring meanwhile: {issued_after:?}");
    assert!(by_key(&new_kid) >= 20 && by_key(&old_kid) >= 20, "both keys carried load: {seen:?}");
    stack.shutdown().await.unwrap();
}
