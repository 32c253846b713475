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
        .args(["--quick", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("bench runs");
    assert!(status.success(), "bench --quick failed");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cells = results["cells"].as_array().unwrap();
    for workload in ["health", "get", "get-paced", "list", "put", "post", "login-1", "login-n", "login-flood"] {
        assert!(cells.iter().any(|c| c["workload"] == workload), "no {workload} cell");
    }
    for path in ["direct", "gateway", "gateway-nocache", "validate"] {
        let cell = cells.iter().find(|c| c["workload"] == "get" && c["path"] == path).unwrap();
        assert!(cell["ok"].as_bool().unwrap() && cell["requests"].as_u64().unwrap() > 0, "{cell}");
    }
    // The per-request validation path calls auth-svc once per request; the gateway never does.
    let validate = cells.iter().find(|c| c["workload"] == "get" && c["path"] == "validate").unwrap();
    assert!(validate["validate_calls_per_1k"].as_f64().unwrap() > 900.0, "{validate}");
    let gateway = cells.iter().find(|c| c["workload"] == "get" && c["path"] == "gateway").unwrap();
    assert_eq!(gateway["validate_calls_per_1k"].as_f64().unwrap(), 0.0, "{gateway}");
    assert!(results["problems"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(out.with_extension("md"));
}
