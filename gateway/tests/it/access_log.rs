//! `[access_log] successes`: with a share of 0, a success gets no access line while a refusal
//! and a request whose trace is sampled still get one, with the request's trace id.

use std::time::Duration;

use testkit::harness::*;

#[tokio::test]
async fn with_no_share_of_successes_only_refusals_and_sampled_traces_are_logged() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| f.access_log.successes = 0.0).await;
    let (token, _) = login(&stack.auth, "sampledlog").await;
    let get = |id: &'static str| client().get(stack.gateway.url_for("/tasks")).header("x-request-id", id);

    assert_eq!(get("al-success").bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(get("al-refused").send().await.unwrap().status(), 401);
    let sampled_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get("al-sampled")
        .bearer_auth(&token)
        .header("traceparent", format!("00-{sampled_trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Lines are written in the order the requests ended: once the last one's is in, the
    // success's would be too.
    let log = log_path("gateway", stack.gateway.addr.port());
    let text = testkit::wait::until_some("the access line of the sampled request", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { text.contains("al-sampled").then_some(text) }
    })
    .await;
    let line = |id: &str| text.lines().find(|l| l.contains(id)).map(str::to_owned);
    assert!(line("al-refused").is_some_and(|l| l.contains("401")), "{text}");
    assert!(line("al-sampled").is_some_and(|l| l.contains(sampled_trace)), "{text}");
    assert_eq!(line("al-success"), None, "a success is not logged at a share of 0");
}
