//! A JWT secret rotation on the whole local stack, done as the runbook says (one
//! `put-secret-value`, no restart), under steady load: no request fails, whichever key signed
//! its token. auth-svc and the gateways read the keyring from Secrets Manager (moto); the two
//! auth-svc instances behind the one Cloud Map name hold different keyrings for a while (auth-1
//! re-reads every 5 s, auth-2 not for an hour), as during a real rolling refresh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devstack::stack::Stack;
use e2e::rotation_load::{RotationLoad, failed, kid, requests_with};
use e2e::{Http, client, login, options, register};
use testkit::moto::Moto;

const SECRET_NAME: &str = "e2e/jwt-rotation";
const OLD: &str = "e2e-rotation-old-0123456789abcdef0123456789abcdef";
const NEW: &str = "e2e-rotation-new-0123456789abcdef0123456789abcdef";

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
    // Steady load through the front door: both gateways, tokens of whatever key is in the pool.
    let load = RotationLoad::start(&base, tokens);
    let old_kid = load.old_kid().to_owned();
    load.wait_for_old_key_load(20).await;

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
        load.add_token(token);
        if issued_after.len() == 2 && issued_after.values().all(|n| *n >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Load keeps running with both keys' tokens in the pool: for 4 s, and until each key has
    // carried at least 20 requests since (what the assertions below need, on any machine).
    load.run_both_keys_for(Duration::from_secs(4), 20).await;
    let seen = load.finish().await;
    let by_key = |k: &str| requests_with(&seen, k);
    let failed = failed(&seen);
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
