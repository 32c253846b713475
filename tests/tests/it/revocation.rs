//! Logout and revocation on the whole local stack: every gateway refuses a logged-out token
//! within its poll interval (+1 s), also one whose cache held it; logout-all cuts every older
//! token and a newer one works; revocations survive an auth-svc restart, and while auth-svc is
//! down the gateways keep enforcing what they pulled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use devstack::stack::{Options, Stack};
use e2e::{Http, call, client, counter, login, options, register};
use reqwest::{Method, StatusCode};
use testkit::wait;

/// `[revocation] poll_interval_secs` in these stacks (the default).
const POLL_INTERVAL: Duration = Duration::from_secs(2);

fn revocation_options() -> Options {
    let mut opts = options();
    opts.sidecar_set.push(("revocation.poll_interval_secs".into(), POLL_INTERVAL.as_secs().to_string()));
    opts
}

fn gateways(stack: &Stack) -> Vec<SocketAddr> {
    (0..stack.task_count()).map(|i| stack.gateway_addrs(i).0).collect()
}

async fn status_at(c: &reqwest::Client, gateway: SocketAddr, token: &str) -> (StatusCode, serde_json::Value) {
    let r = call(c, Method::GET, &format!("http://{gateway}/tasks"), Some(token), None).await;
    (r.status, r.json)
}

/// Polls every gateway at once until `token` is refused as revoked; the time each took from
/// `since`, in the order of `gateways`.
async fn refusal_times(c: &reqwest::Client, gateways: &[SocketAddr], token: &str, since: Instant) -> Vec<Duration> {
    let limit = POLL_INTERVAL + Duration::from_secs(1);
    let mut polls = tokio::task::JoinSet::new();
    for (i, gw) in gateways.iter().copied().enumerate() {
        let (c, token) = (c.clone(), token.to_owned());
        polls.spawn(async move {
            loop {
                let (status, body) = status_at(&c, gw, &token).await;
                if status == StatusCode::UNAUTHORIZED {
                    assert_eq!(body["reason"], "revoked", "{body}");
                    return (i, since.elapsed());
                }
                assert_eq!(status, StatusCode::OK, "{body}");
                assert!(since.elapsed() <= limit, "gateway {gw} still accepts the token after {limit:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let mut times = vec![Duration::ZERO; gateways.len()];
    while let Some(done) = polls.join_next().await {
        let (i, t) = done.unwrap();
        times[i] = t;
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_refused_by_every_gateway_within_the_poll_interval() {
    let stack = Stack::start(revocation_options()).await.expect("the stack starts");
    let (base, c) = (stack.url(), client());
    register(&Http::new(&c, &base), "leaver").await;
    let token = login(&Http::new(&c, &base), "leaver").await;
    let other = login(&Http::new(&c, &base), "leaver").await;
    let gws = gateways(&stack);
    assert!(gws.len() >= 2);
    for gw in &gws {
        // Twice: the second answer comes from the gateway's token cache.
        assert_eq!(status_at(&c, *gw, &token).await.0, StatusCode::OK);
        assert_eq!(status_at(&c, *gw, &token).await.0, StatusCode::OK);
    }

    let r = call(&c, Method::POST, &format!("{base}/auth/logout"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    let logged_out = Instant::now();
    let times = refusal_times(&c, &gws, &token, logged_out).await;
    eprintln!("logout to refusal, per gateway (poll interval {POLL_INTERVAL:?}): {times:?}");
    let r = call(&c, Method::GET, &format!("{base}/tasks"), Some(&token), None).await;
    r.assert_error(StatusCode::UNAUTHORIZED);
    // The user's other session is untouched.
    for gw in &gws {
        assert_eq!(status_at(&c, *gw, &other).await.0, StatusCode::OK);
    }
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_cuts_every_older_token_at_every_gateway_and_a_new_one_works() {
    let stack = Stack::start(revocation_options()).await.expect("the stack starts");
    let (base, c) = (stack.url(), client());
    register(&Http::new(&c, &base), "everywhere").await;
    let first = login(&Http::new(&c, &base), "everywhere").await;
    let second = login(&Http::new(&c, &base), "everywhere").await;
    let gws = gateways(&stack);
    for gw in &gws {
        assert_eq!(status_at(&c, *gw, &first).await.0, StatusCode::OK);
    }
    let r = call(&c, Method::POST, &format!("{base}/auth/logout-all"), Some(&second), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    let cut = Instant::now();
    let first_times = refusal_times(&c, &gws, &first, cut).await;
    let second_times = refusal_times(&c, &gws, &second, cut).await;
    eprintln!("logout-all to refusal per gateway: first token {first_times:?}, second token {second_times:?}");
    let fresh = login(&Http::new(&c, &base), "everywhere").await;
    for gw in &gws {
        let (status, body) = status_at(&c, *gw, &fresh).await;
        assert_eq!(status, StatusCode::OK, "a token issued after logout-all works: {body}");
    }
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_hold_while_auth_svc_is_down_and_survive_its_restart() {
    let mut stack = Stack::start(revocation_options()).await.expect("the stack starts");
    let (base, c) = (stack.url(), client());
    register(&Http::new(&c, &base), "survivor").await;
    let revoked = login(&Http::new(&c, &base), "survivor").await;
    let kept = login(&Http::new(&c, &base), "survivor").await;
    let gws = gateways(&stack);
    let r = call(&c, Method::POST, &format!("{base}/auth/logout"), Some(&revoked), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    refusal_times(&c, &gws, &revoked, Instant::now()).await;

    // Every auth-svc instance down: the gateways keep the list they pulled.
    let failed_pulls = r#"gateway_revocation_pulls_total{outcome="failure"}"#;
    let metrics: Vec<SocketAddr> = (0..stack.task_count()).map(|i| stack.gateway_addrs(i).1).collect();
    let mut failed_before = Vec::new();
    for m in &metrics {
        failed_before.push(counter(&c, *m, failed_pulls).await);
    }
    for i in 0..stack.auth_count() {
        stack.kill_auth(i);
    }
    // Once each gateway has failed a pull (auth-svc gone), it still enforces the list it has.
    for (m, before) in metrics.iter().zip(failed_before) {
        wait::until("a failed revocation pull", POLL_INTERVAL * 5, || async {
            counter(&c, *m, failed_pulls).await > before
        })
        .await;
    }
    for gw in &gws {
        assert_eq!(status_at(&c, *gw, &revoked).await.0, StatusCode::UNAUTHORIZED, "gateway {gw}");
        assert_eq!(status_at(&c, *gw, &kept).await.0, StatusCode::OK, "gateway {gw}: local verification goes on");
    }

    // Restarted auth-svc instances still know the revocation (it is in PostgreSQL).
    for i in 0..stack.auth_count() {
        stack.restart_auth(i).await.unwrap();
    }
    for i in 0..stack.auth_count() {
        let (addr, _) = stack.auth_addrs(i);
        let r = call(&c, Method::POST, &format!("http://{addr}/auth/validate"), Some(&revoked), None).await;
        r.assert_error(StatusCode::UNAUTHORIZED);
        assert_eq!(r.json["reason"], "revoked");
    }
    stack.shutdown().await.unwrap();
}
