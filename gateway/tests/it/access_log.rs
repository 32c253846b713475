//! The access line: with `[access_log] successes` at 0, a success gets none while a refusal
//! and a request whose trace is sampled still get one, with the request's trace id; at the
//! default share, a success whose trace id falls in it gets one, and at any share one slower
//! than `slow_ms`; with JSON
//! logs, one JSON line per request with the access keys in order, none at `RUST_LOG=warn`, and
//! every recorded request's spans still exported after the line before it.

use std::time::Duration;

use gateway::config::SidecarFile;
use testkit::harness::*;
use testkit::launch::KeyringSource;

#[tokio::test]
async fn with_no_share_of_successes_only_refusals_and_sampled_traces_are_logged() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| {
        f.access_log.successes = 0.0;
        // The first request of a fresh gateway can take 500 ms on a busy machine.
        f.access_log.slow_ms = 0;
    })
    .await;
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
    let text = log_once(&stack.gateway, "the access line of the sampled request", |t| t.contains("al-sampled")).await;
    let line = |id: &str| text.lines().find(|l| l.contains(id)).map(str::to_owned);
    assert!(line("al-refused").is_some_and(|l| l.contains("401")), "{text}");
    assert!(line("al-sampled").is_some_and(|l| l.contains(sampled_trace)), "{text}");
    assert_eq!(line("al-success"), None, "a success is not logged at a share of 0");
}

/// The default share (one success in a hundred, sidecar.toml): a success is logged when its
/// trace id's low 64 bits fall in the share, whichever gateway answers, and a refusal always.
#[tokio::test]
async fn by_default_a_success_is_logged_when_its_trace_id_falls_in_the_share() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |f| {
        f.access_log = SidecarFile::default().access_log;
        // A busy machine's request can take longer than the default's 500 ms; the slow rule has
        // its own test.
        f.access_log.slow_ms = 0;
    })
    .await;
    let (token, _) = login(&stack.auth, "defaultshare").await;
    let get = |id: &str, trace: &str| {
        client()
            .get(stack.gateway.url_for("/tasks"))
            .header("x-request-id", id)
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-00"))
    };
    // Unsampled traces (flag 00): only the share decides. Low 64 bits 1 are in any share
    // above 0; low bits near 2^64 only in a share near 1.
    let inside = "4bf92f3577b34da60000000000000001";
    let outside = "4bf92f3577b34da6fffffffffffffff0";
    assert_eq!(get("ds-outside", outside).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(get("ds-refused", outside).send().await.unwrap().status(), 401);
    assert_eq!(get("ds-inside", inside).bearer_auth(&token).send().await.unwrap().status(), 200);

    let text = log_once(&stack.gateway, "the access line of the last request", |t| t.contains("ds-inside")).await;
    let line = |id: &str| text.lines().find(|l| l.contains(id)).map(str::to_owned);
    assert!(line("ds-inside").is_some_and(|l| l.contains(inside)), "{text}");
    assert!(line("ds-refused").is_some_and(|l| l.contains("401")), "{text}");
    assert_eq!(line("ds-outside"), None, "a success outside the default share is not logged");
}

/// An upstream that answers every request (e.g. `/tasks/health`, a public route) with
/// `answer` after `delay`, then closes the connection.
async fn upstream_answering(delay: Duration, answer: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_success_slower_than_slow_ms_is_logged_at_any_share() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let upstream = upstream_answering(Duration::from_millis(300), answer).await;
    let edit = |slow_ms| {
        sidecar(move |f| {
            f.access_log.successes = 0.0;
            f.access_log.slow_ms = slow_ms;
        })
    };
    let logged =
        start_gateway(edit(200), upstream, "http://127.0.0.1:9", KeyringSource::secret(OLD_SECRET), false).await;
    let unlogged =
        start_gateway(edit(0), upstream, "http://127.0.0.1:9", KeyringSource::secret(OLD_SECRET), false).await;
    for (gateway, id) in [(&logged, "slow-logged"), (&unlogged, "slow-unlogged"), (&unlogged, "slow-refused")] {
        let mut r = client().get(gateway.url_for("/tasks/health")).header("x-request-id", id);
        if id == "slow-refused" {
            // A refusal after it on the same gateway: once its line is in, the success's would be.
            r = client().get(gateway.url_for("/tasks")).header("x-request-id", id);
        }
        let status = r.send().await.unwrap().status();
        assert_eq!(status, if id == "slow-refused" { 401 } else { 200 }, "{id}");
    }
    let text = log_once(&logged, "the slow success's access line", |t| t.contains("slow-logged")).await;
    assert!(text.lines().any(|l| l.contains("slow-logged") && l.contains("200")), "{text}");
    let text = log_once(&unlogged, "the refusal's access line", |t| t.contains("slow-refused")).await;
    assert!(!text.contains("slow-unlogged"), "slow_ms 0 logs no success for its duration:\n{text}");
}

/// A 200 whose body the upstream broke off is an error, logged at any share.
#[tokio::test]
async fn a_success_that_ends_in_an_error_is_logged_at_any_share() {
    // 100 bytes announced, 3 sent, then the connection closes.
    let upstream = upstream_answering(Duration::ZERO, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc").await;
    let edit = sidecar(|f| {
        f.access_log.successes = 0.0;
        f.access_log.slow_ms = 0;
    });
    let gateway = start_gateway(edit, upstream, "http://127.0.0.1:9", KeyringSource::secret(OLD_SECRET), false).await;
    let r = client().get(gateway.url_for("/tasks/health")).header("x-request-id", "cut-body").send().await.unwrap();
    assert_eq!(r.status(), 200, "the head was forwarded before the body broke off");
    assert!(r.bytes().await.is_err(), "the client sees the body cut short");
    let text = log_once(&gateway, "the cut response's access line", |t| t.contains("cut-body")).await;
    let line = text.lines().find(|l| l.contains("cut-body")).unwrap_or_default();
    assert!(line.contains("status=200") && !line.contains("error=\"\""), "{line}");
}

/// The gateway's keys of a JSON access line, in the order they are written (docs/observability.md).
const ACCESS_KEYS: [&str; 14] = [
    "timestamp",
    "level",
    "message",
    "method",
    "path",
    "status",
    "upstream_status",
    "duration_ms",
    "request_id",
    "trace_id",
    "decision",
    "reason",
    "user_id",
    "error",
];

/// A gateway (`edit` applied to its config) in front of the harness's task-svc, logging
/// `LOG_FORMAT=json` at `filter`, with the variables `env`.
async fn json_gateway(
    stack: &GatewayHarness,
    filter: &str,
    edit: impl FnOnce(&mut SidecarFile),
    env: &[(&str, &str)],
) -> RunningService {
    let logging = Logging { format: Some(LogFormat::Json), filter: Some(filter.into()) };
    let (upstream, auth) = (stack.task.addr, stack.auth.url());
    start_gateway_logging(sidecar(edit), upstream, &auth, KeyringSource::secret(OLD_SECRET), true, logging, env).await
}

/// The JSON access line of request `id` in the log `text`, as written and parsed; panics naming
/// `id` when there is none.
fn access_line(text: &str, id: &str) -> (String, serde_json::Value) {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok().map(|v| (l.to_owned(), v)))
        .find(|(_, v)| v["request_id"] == id && v["message"] == "request")
        .unwrap_or_else(|| panic!("no access line for {id} in\n{text}"))
}

/// The gateway's log once it holds a whole line (a JSON object) containing `needle`.
async fn log_with_line(gateway: &RunningService, needle: &str) -> String {
    log_once(gateway, &format!("a whole log line with {needle}"), |text| {
        text.lines().any(|l| l.contains(needle) && serde_json::from_str::<serde_json::Value>(l).is_ok())
    })
    .await
}

#[tokio::test]
async fn with_json_logs_a_request_is_one_json_line_with_the_access_keys_in_order() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let gateway = json_gateway(&stack, "info", |f| f.server.max_body_bytes = 1024, &[]).await;
    let (token, user_id) = login(&stack.auth, "jsonline").await;
    let get = |path: &str, id: &'static str| client().get(gateway.url_for(path)).header("x-request-id", id);
    let r = get("/tasks?status=completed", "jl-success").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A token put in a path, with and without the header: task-svc's 400 (not an id) and a 401.
    let in_path = format!("/tasks/{token}");
    assert_eq!(get(&in_path, "jl-token-path").bearer_auth(&token).send().await.unwrap().status(), 400);
    assert_eq!(get(&in_path, "jl-token-path-refused").send().await.unwrap().status(), 401);
    // A body over max_body_bytes after the token was allowed: the limit's refusal, not "allow".
    let too_large = client()
        .post(gateway.url_for("/tasks"))
        .header("x-request-id", "jl-too-large")
        .bearer_auth(&token)
        .json(&serde_json::json!({"title": "x".repeat(2048)}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(get("/tasks/x", "jl-refused").send().await.unwrap().status(), 401);

    // Lines are written in the order the requests ended: the refusal's is the later one.
    let text = log_with_line(&gateway, "jl-refused").await;
    // Every line of the log is JSON, the access lines and tracing's own alike.
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
    let access = |id: &str| access_line(&text, id);

    let (_, refused) = access("jl-too-large");
    assert_eq!(
        (refused["status"].as_u64(), refused["decision"].as_str(), refused["reason"].as_str()),
        (Some(413), Some("refused"), Some("body_too_large")),
        "{refused}"
    );
    assert_eq!(refused["user_id"].as_i64(), Some(user_id), "the token was allowed: {refused}");
    let (raw, ok) = access("jl-success");
    let positions: Vec<usize> =
        ACCESS_KEYS.iter().map(|k| raw.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {raw}"))).collect();
    assert!(positions.is_sorted(), "keys out of order: {raw}");
    assert_eq!(ok.as_object().map(|o| o.len()), Some(ACCESS_KEYS.len()), "{raw}");
    assert_eq!((ok["level"].as_str(), ok["message"].as_str()), (Some("INFO"), Some("request")));
    assert_eq!((ok["method"].as_str(), ok["path"].as_str()), (Some("GET"), Some("/tasks")), "no query string");
    assert_eq!((ok["status"].as_u64(), ok["upstream_status"].as_u64()), (Some(200), Some(200)));
    assert_eq!((ok["decision"].as_str(), ok["user_id"].as_i64()), (Some("allow"), Some(user_id)));
    assert_eq!(ok["error"], "");
    assert!(ok["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{raw}");
    let trace = ok["trace_id"].as_str().unwrap_or_default();
    assert!(trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()), "{raw}");
    let at = ok["timestamp"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z') && at.len() == 27, "{raw}");
    assert!(
        !text.contains("status=completed") && !text.contains(&token),
        "the query and the token stay out of the log"
    );

    for id in ["jl-token-path", "jl-token-path-refused"] {
        let (raw, line) = access(id);
        assert_eq!(line["path"], "/tasks/[redacted]", "{raw}");
    }

    let (raw, refused) = access("jl-refused");
    assert_eq!((refused["status"].as_u64(), refused["upstream_status"].as_u64()), (Some(401), Some(0)), "{raw}");
    assert_eq!((refused["user_id"].as_i64(), refused["path"].as_str()), (Some(0), Some("/tasks/x")), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_rust_log_warn_writes_no_access_line() {
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    // The gateway's own lines stay at info: the file shows the log was written to the end.
    let mut gateway = json_gateway(&stack, "warn,gateway=info", |_| {}, &[]).await;
    let (token, _) = login(&stack.auth, "quietline").await;
    let get = |id: &'static str| client().get(gateway.url_for("/tasks")).header("x-request-id", id);
    assert_eq!(get("ql-success").bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(get("ql-refused").send().await.unwrap().status(), 401);
    // Whatever is queued is written when the gateway exits.
    gateway.process.terminate().unwrap();
    let exit = tokio::task::block_in_place(|| gateway.process.wait_timeout(Duration::from_secs(10))).unwrap();
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    let text = std::fs::read_to_string(log_path("gateway", gateway.addr.port())).unwrap();
    assert!(text.contains("gateway stopped"), "the log was not written to its end:\n{text}");
    assert!(!text.contains("ql-success") && !text.contains("ql-refused"), "{text}");
}

/// The access line is written after the request's spans end, on the same worker thread. Each
/// recorded request must still reach the OpenTelemetry layer: its server span is exported, and
/// task-svc is sent that span's trace (one proxy thread, so every request follows the one
/// before on the same thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_every_recorded_request_after_an_access_line_is_exported() {
    let receiver = testkit::otlp::Receiver::start().await;
    let stack = GatewayHarness::start(OLD_SECRET, None, OLD_SECRET, |_| {}).await;
    let endpoint = receiver.endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_TRACES_SAMPLER_ARG", "1")];
    let gateway = json_gateway(&stack, "info", |f| f.server.threads = 1, &env).await;
    let (token, _) = login(&stack.auth, "tracedline").await;
    let ids = ["tl-1", "tl-2", "tl-3", "tl-4"];
    for id in ids {
        let r = client().get(gateway.url_for("/tasks")).bearer_auth(&token).header("x-request-id", id).send().await;
        assert_eq!(r.unwrap().status(), 200, "{id}");
    }
    let text = log_with_line(&gateway, "tl-4").await;
    for id in ids {
        let (_, line) = access_line(&text, id);
        let trace = line["trace_id"].as_str().unwrap_or_default().to_owned();
        let spans = testkit::wait::until_some(&format!("the gateway's spans of {id}"), Duration::from_secs(15), || {
            let spans = receiver.trace(&trace);
            let server =
                spans.iter().any(|s| s.service == "gateway" && s.kind == 2 && s.attr("request_id") == Some(id));
            async move { server.then_some(spans) }
        })
        .await;
        assert!(spans.iter().any(|s| s.service == "gateway" && s.kind == 3), "the upstream call's span: {spans:?}");
    }

    // A token put in a path stays out of the spans' `url.path`, as out of the access line.
    let in_path = format!("/tasks/{token}");
    let r = client().get(gateway.url_for(&in_path)).bearer_auth(&token).header("x-request-id", "tl-token").send().await;
    assert_eq!(r.unwrap().status(), 400);
    let text = log_with_line(&gateway, "tl-token").await;
    let (_, line) = access_line(&text, "tl-token");
    let trace = line["trace_id"].as_str().unwrap_or_default().to_owned();
    let spans = testkit::wait::until_some("the server and upstream spans of tl-token", Duration::from_secs(15), || {
        let spans: Vec<_> = receiver.trace(&trace).into_iter().filter(|s| s.service == "gateway").collect();
        let both = [2, 3].iter().all(|kind| spans.iter().any(|s| s.kind == *kind));
        async move { both.then_some(spans) }
    })
    .await;
    for span in &spans {
        assert_eq!(span.attr("url.path"), Some("/tasks/[redacted]"), "{span:?}");
    }
}
