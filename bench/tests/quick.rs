//! The harness itself, end to end, in quick mode on the debug binaries the test build made:
//! it must start everything, seed, drive every cell with wrk and report a valid run.
//! Ignored in the ordinary test run (it loads the machine for about a minute); scripts/test.sh
//! runs it as its own step:
//!
//!     cargo nextest run --workspace --run-ignored only -E 'package(bench)'
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
#[ignore = "loads the machine; run as its own step (see the file's header)"]
fn quick_mode_produces_a_valid_run() {
    let bench = env!("CARGO_BIN_EXE_bench");
    // auth-svc, task-svc and gateway are built beside bench in the same profile directory.
    let bin_dir = std::path::Path::new(bench).parent().unwrap();
    let out = std::env::temp_dir().join(format!("bench-quick-{}.json", std::process::id()));
    let status = Command::new(bench)
        // The per-subject rate limits off, beside the default gateway that keeps them on: what
        // they cost, in one run (docs/benchmarks.md).
        .args(["--variant", "nolimits:rate_limit.enabled=false"])
        .args(["--quick", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("bench runs");
    assert!(status.success(), "bench --quick failed");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cells = results["cells"].as_array().unwrap();
    for workload in
        ["health", "get", "get-paced", "get-vpc", "list", "put", "post", "login-1", "login-n", "login-flood"]
    {
        assert!(cells.iter().any(|c| c["workload"] == workload), "no {workload} cell");
    }
    for path in [
        "direct",
        "gateway",
        "gateway-uds",
        "gateway-nocache",
        "gateway-nolimits",
        "gateway-revoked",
        "haproxy",
        "haproxy-jwt",
        "validate",
        "front-door",
    ] {
        let cell = cells.iter().find(|c| c["workload"] == "get" && c["path"] == path).unwrap();
        assert!(cell["ok"].as_bool().unwrap() && cell["requests"].as_u64().unwrap() > 0, "{cell}");
    }
    // The VPC cell: every path answered, through relays that really held the chunks.
    for path in ["direct", "gateway", "haproxy-jwt", "validate"] {
        let cell = cells.iter().find(|c| c["workload"] == "get-vpc" && c["path"] == path).unwrap();
        assert!(cell["ok"].as_bool().unwrap() && cell["requests"].as_u64().unwrap() > 0, "{cell}");
    }
    let network = &results["network"];
    assert!(network["holds"]["chunks"].as_u64().unwrap() > 0, "{network}");
    assert!(network["holds"]["p50_ms"].as_f64().unwrap() >= network["delay_ms"].as_f64().unwrap(), "{network}");
    // The revocation cell: the gateway pulled every seeded revocation, and then only deltas.
    let revocations = &results["revocations"];
    assert_eq!(revocations["live_in_gateway"].as_i64().unwrap(), revocations["seeded"].as_i64().unwrap());
    assert!(revocations["empty_pull_bytes"].as_f64().unwrap() < 1024.0, "{revocations}");
    assert!(revocations["full_pull_bytes"].as_u64().unwrap() > 50 * 10_000, "{revocations}");
    // Every target is evaluated (met or not) in quick mode too.
    let targets = results["targets"].as_array().unwrap();
    for name in ["HAProxy jwt_verify", "validate path adds", "live revocations", "steady state"] {
        assert!(targets.iter().any(|t| t["name"].as_str().unwrap().contains(name)), "no target about {name}");
    }
    // The per-request validation path calls auth-svc once per request; the gateway never does.
    let validate = cells.iter().find(|c| c["workload"] == "get" && c["path"] == "validate").unwrap();
    assert!(validate["validate_calls_per_1k"].as_f64().unwrap() > 900.0, "{validate}");
    let gateway = cells.iter().find(|c| c["workload"] == "get" && c["path"] == "gateway").unwrap();
    assert_eq!(gateway["validate_calls_per_1k"].as_f64().unwrap(), 0.0, "{gateway}");
    // Per-request counters beside the times: a gateway that answered waited on its sockets.
    let switches = &gateway["per_request"]["gateway"];
    assert!(switches["voluntary_switches"].as_f64().unwrap() > 0.0, "{gateway}");
    assert_eq!(gateway["edge_per_request"], *switches, "{gateway}");
    counters_are_present_and_plausible(&results, gateway);
    assert!(results["problems"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(out.with_extension("md"));
}

/// Whether perf counts system calls on this machine, asked of perf directly (not of the bench).
fn perf_counts_syscalls_here() -> bool {
    Command::new("perf").args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"]).output().is_ok_and(|o| {
        let csv = String::from_utf8_lossy(&o.stderr).into_owned();
        csv.lines()
            .any(|l| l.ends_with(",,") && l.split(',').next().is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0)))
    })
}

/// The per-request counters beside the times: system calls wherever perf can count them
/// here (a proxied request is at least a read and a write on each side), n/a otherwise; no
/// heap figures from the default build (the counting allocator is a feature build's).
fn counters_are_present_and_plausible(results: &serde_json::Value, gateway: &serde_json::Value) {
    let counting = &results["counting"];
    let per = &gateway["per_request"];
    if perf_counts_syscalls_here() {
        assert_eq!(counting["syscalls"], "", "{counting}");
        for process in ["gateway", "task-svc"] {
            let n = per[process]["syscalls"].as_f64().unwrap_or(0.0);
            assert!((2.0..1000.0).contains(&n), "{process}: {n} syscalls/request\n{gateway}");
        }
        assert_eq!(gateway["edge_per_request"]["syscalls"], per["gateway"]["syscalls"]);
        // The front door's path counts both of its processes.
        let door =
            results["cells"].as_array().unwrap().iter().find(|c| c["workload"] == "get" && c["path"] == "front-door");
        let door = door.unwrap();
        assert!(door["per_request"]["front-door"]["syscalls"].as_f64().unwrap() > 0.0, "{door}");
        assert!(
            door["edge_per_request"]["syscalls"].as_f64().unwrap()
                > door["per_request"]["gateway"]["syscalls"].as_f64().unwrap(),
            "{door}"
        );
    } else {
        assert_ne!(counting["syscalls"], "", "{counting}");
        assert!(per["gateway"]["syscalls"].is_null(), "{gateway}");
    }
    if counting["instructions"] == "" {
        assert!(per["gateway"]["instructions"].as_f64().unwrap() > 1000.0, "{gateway}");
    } else {
        assert!(per["gateway"]["instructions"].is_null(), "{gateway}");
    }
    assert!(per["gateway"]["heap_allocations"].is_null() && per["gateway"]["heap_bytes"].is_null(), "{gateway}");
}
