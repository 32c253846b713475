//! Traces across the hop: a request through front door → gateway → task-svc → PostgreSQL is one
//! trace under the ALB header's `Root`, exported over OTLP/gRPC to an in-process receiver; the
//! fallback call to auth-svc is a child span; the JSON log lines of the request carry its
//! `trace_id`; a malformed trace header starts a new trace and is not forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devstack::logs::LogSink;
use e2e::*;
use platform::keyring::Alg;
use reqwest::StatusCode;
use testkit::otlp::{ReceivedSpan, Receiver, render_tree};
use testkit::{TestDatabase, wait};

/// The lines the stack's processes print, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        // Shown by nextest when the test fails.
        std::io::stdout().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The JSON lines `process` (a name prefix such as `gateway`) printed.
    fn json_of(&self, process: &str) -> Vec<serde_json::Value> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter_map(|l| l.split_once(" | "))
            .filter(|(name, _)| name.trim().starts_with(process))
            .filter_map(|(_, json)| serde_json::from_str(json).ok())
            .collect()
    }
}

const DEADLINE: Duration = Duration::from_secs(30);

/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// Waits until trace `trace_id` holds a span matching each of `wanted` (service, name, kind).
async fn wait_for_spans(receiver: &Receiver, trace_id: &str, wanted: &[(&str, &str, i32)]) -> Vec<ReceivedSpan> {
    wait::until_some(&format!("spans {wanted:?} of trace {trace_id}"), DEADLINE, || {
        let spans = receiver.trace(trace_id);
        let complete = wanted
            .iter()
            .all(|(svc, name, kind)| spans.iter().any(|s| s.service == *svc && s.name == *name && s.kind == *kind));
        async move { complete.then_some(spans) }
    })
    .await
}

fn one<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.service == service && s.name == name).collect();
    assert_eq!(found.len(), 1, "one {service} {name} span in\n{}", render_tree(spans));
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_from_the_alb_header_to_the_sql_and_its_logs() {
    let receiver = Receiver::start().await;
    let db = TestDatabase::new().await;
    let lines = Lines::default();
    let mut opts = options();
    opts.database_url = Some(db.url.clone());
    opts.auth_instances = 1;
    opts.task_instances = 1;
    opts.logs = LogSink::new(Box::new(lines.clone()));
    // The unsampled request below is a success: its access line is asserted, so every success
    // gets one (the default share logs one in a hundred).
    opts.sidecar_set.push(("access_log.successes".into(), "1".into()));
    opts.service_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()),
        ("OTEL_TRACES_SAMPLER".into(), "parentbased_traceidratio".into()),
        ("OTEL_TRACES_SAMPLER_ARG".into(), "1".into()),
        ("LOG_FORMAT".into(), "json".into()),
    ];
    let stack = devstack::stack::Stack::start(opts).await.expect("the stack starts");
    let alb = stack.url();
    let c = client();
    let (token, user_id) = testkit::accounts::sign_up(&Http::new(&c, &alb), "tracer").await;

    // The ALB's header on a request that came without one: Root only, no Sampled (the ratio, 1
    // here, decides).
    let now = testkit::accounts::unix_now() as u32;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let trace_id = format!("{now:08x}{:024x}", nanos & ((1u128 << 96) - 1));
    let root = format!("1-{}-{}", &trace_id[..8], &trace_id[8..]);
    let r = c
        .get(format!("{alb}/tasks"))
        .bearer_auth(&token)
        .header("x-amzn-trace-id", format!("Root={root}"))
        .header("x-request-id", "e2e-traced-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let spans = wait_for_spans(
        &receiver,
        &trace_id,
        &[
            ("gateway", "GET", SERVER),
            ("gateway", "GET", CLIENT),
            ("task-svc", "GET /tasks", SERVER),
            ("task-svc", "SELECT tasks", CLIENT),
        ],
    )
    .await;
    let tree = render_tree(&spans);
    println!("span tree of trace {trace_id}:\n{tree}");
    let server = spans.iter().find(|s| s.service == "gateway" && s.kind == SERVER).expect("gateway server span");
    assert_eq!(server.parent, "", "the ALB's Root-only header names no parent:\n{tree}");
    assert_eq!(server.attr("request_id"), Some("e2e-traced-1"));
    assert_eq!(server.attr("auth.decision"), Some("allow"), "{tree}");
    assert!(server.attr("auth.cause").is_some_and(|c| ["local_verify", "cache_hit"].contains(&c)), "{tree}");
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    let upstream = spans.iter().find(|s| s.service == "gateway" && s.kind == CLIENT).expect("gateway client span");
    assert_eq!(upstream.parent, server.span_id, "{tree}");
    let handler = one(&spans, "task-svc", "GET /tasks");
    assert_eq!(handler.parent, upstream.span_id, "task-svc continues the gateway's traceparent:\n{tree}");
    assert_eq!(handler.attr("http.route"), Some("/tasks"));
    let sql = one(&spans, "task-svc", "SELECT tasks");
    assert_eq!(sql.parent, handler.span_id, "{tree}");
    assert_eq!(sql.attr("db.system.name"), Some("postgresql"));
    assert_eq!(sql.attr("db.collection.name"), Some("tasks"));
    assert!(sql.attributes.keys().all(|k| !k.contains("param")), "no parameters: {tree}");

    // The JSON log lines of that request carry its trace id, in both processes.
    for process in ["gateway", "task-svc"] {
        wait::until(&format!("a {process} log line with trace_id {trace_id}"), DEADLINE, || {
            let found = lines.json_of(process).iter().any(|l| l["trace_id"] == trace_id.as_str());
            async move { found }
        })
        .await;
    }

    // Malformed trace headers: a new trace, and task-svc sees the gateway's ids, not the client's.
    let bad_root = "1-zzzzzzzz-bd862e3fe1be46a994272793";
    let r = c
        .get(format!("{alb}/tasks"))
        .bearer_auth(&token)
        .header("x-amzn-trace-id", format!("Root={bad_root};Parent=53995c3f42cd8ad8;Sampled=1"))
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01;evil")
        .header("x-request-id", "e2e-malformed-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = wait::until_some("the gateway span of the malformed request", DEADLINE, || {
        let found = receiver
            .spans()
            .into_iter()
            .find(|s| s.attr("request_id") == Some("e2e-malformed-1") && s.service == "gateway");
        async move { found }
    })
    .await;
    assert_eq!(fresh.parent, "", "a new trace, not a continued one");
    assert_ne!(fresh.trace_id, "0af7651916cd43dd8448eb211c80319c");
    let spans =
        wait_for_spans(&receiver, &fresh.trace_id, &[("gateway", "GET", CLIENT), ("task-svc", "GET /tasks", SERVER)])
            .await;
    let upstream = spans.iter().find(|s| s.service == "gateway" && s.kind == CLIENT).expect("gateway client span");
    assert_eq!(one(&spans, "task-svc", "GET /tasks").parent, upstream.span_id, "{}", render_tree(&spans));
    let task_lines = lines.json_of("task-svc");
    assert!(!task_lines.iter().any(|l| l.to_string().contains("zzzzzzzz") || l.to_string().contains("evil")));

    // A caller that decided not to sample: the gateway makes no span, yet passes the trace on
    // and writes its id on the access line, once (its own field, not added a second time).
    let unsampled = "5a1e0000000000000000000000c0ffee";
    let r = c
        .get(format!("{alb}/tasks"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{unsampled}-00f067aa0ba902b7-00"))
        .header("x-request-id", "e2e-unsampled-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for process in ["gateway", "task-svc"] {
        wait::until(&format!("a {process} log line with trace_id {unsampled}"), DEADLINE, || {
            let found = lines.json_of(process).iter().any(|l| l["trace_id"] == unsampled);
            async move { found }
        })
        .await;
    }
    let raw = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    let access = raw.lines().find(|l| l.contains("e2e-unsampled-1") && l.contains("\"status\"")).expect("access line");
    assert_eq!(access.matches("\"trace_id\"").count(), 1, "{access}");

    // A token of a key the gateway does not hold: the fallback to auth-svc is a child span, and
    // auth-svc continues it. A W3C traceparent this time (a client tracing with OpenTelemetry).
    if stack.jwt_alg() == Alg::HS256 {
        let foreign = testkit::accounts::mint("a-key-the-gateway-does-not-hold-0123456789", user_id, 300);
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let r = c
            .get(format!("{alb}/tasks"))
            .bearer_auth(&foreign)
            .header("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let spans = wait_for_spans(
            &receiver,
            caller_trace,
            &[("gateway", "GET", SERVER), ("gateway", "POST", CLIENT), ("auth-svc", "POST /auth/validate", SERVER)],
        )
        .await;
        let tree = render_tree(&spans);
        println!("span tree of trace {caller_trace}:\n{tree}");
        let server = one(&spans, "gateway", "GET");
        assert_eq!(server.parent, "00f067aa0ba902b7", "the caller's span is the parent:\n{tree}");
        assert_eq!(server.attr("auth.cause"), Some("fallback"), "{tree}");
        let fallback = one(&spans, "gateway", "POST");
        assert_eq!((fallback.parent.as_str(), fallback.kind), (server.span_id.as_str(), CLIENT), "{tree}");
        assert_eq!(fallback.attr("server.address"), Some("auth-svc"));
        assert_eq!(one(&spans, "auth-svc", "POST /auth/validate").parent, fallback.span_id, "{tree}");
    }

    // Spans leave each process in order: once a later request's are in (the fallback's, or a
    // request sent now), none of the unsampled request's will come.
    let r =
        c.get(format!("{alb}/tasks")).bearer_auth(&token).header("x-request-id", "e2e-after-1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait::until("the gateway span of a request after the unsampled one", DEADLINE, || {
        let found = receiver.spans().iter().any(|s| s.attr("request_id") == Some("e2e-after-1"));
        async move { found }
    })
    .await;
    assert!(
        receiver.trace(unsampled).is_empty(),
        "an unsampled trace records nothing: {:?}",
        receiver.trace(unsampled)
    );

    stack.shutdown().await.unwrap();
}
