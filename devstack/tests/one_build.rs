//! One build per profile: the builds of the run command (`cargo run --bin devstack`, then its
//! services build) and of the bench compile nothing that the test build did not already
//! compile, because every one of them selects the whole workspace for feature resolution.
//!
//! Ignored in the ordinary test run (it runs cargo, which would build a whole-workspace test
//! build if the current run selected a subset); scripts/test.sh runs it as its own step, right
//! after the workspace test build:
//!
//!     cargo nextest run --workspace --run-ignored only -E 'binary(one_build)'
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use devstack::build::{self, Profile};
use serde_json::Value;

/// What one cargo invocation reported: every artifact file, and the units it compiled.
struct Units {
    files: BTreeSet<String>,
    compiled: Vec<String>,
}

fn units(mut cmd: Command) -> Units {
    let described = build::describe(&cmd);
    let out = cmd.arg("--locked").arg("--message-format=json").stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "`{described}` failed");
    let mut units = Units { files: BTreeSet::new(), compiled: Vec::new() };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        units.files.extend(msg["filenames"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()));
        if msg["fresh"] == false {
            units.compiled.push(format!("{} ({})", msg["package_id"], msg["target"]["name"]));
        }
    }
    println!("`{described}`: {} artifact files, {} units compiled", units.files.len(), units.compiled.len());
    units
}

#[test]
#[ignore = "runs cargo; scripts/test.sh runs it after the workspace test build (see the file's header)"]
fn every_entry_point_reuses_the_test_build() {
    // The test build, as `cargo nextest run --workspace` (and scripts/test.sh) made it.
    let mut test_build = build::cargo();
    test_build.args(["test", "--workspace", "--no-run"]);
    let tested = units(test_build);
    assert!(!tested.files.is_empty(), "the test build reported no artifacts");

    let entry_points = [
        ("the run command (cargo run --bin devstack)", build::cargo_build(&["devstack"], Profile::Dev)),
        ("the run command's services build", build::services(Profile::Dev)),
        ("the bench (cargo run --bin bench)", build::cargo_build(&["bench"], Profile::Dev)),
    ];
    for (what, cmd) in entry_points {
        let built = units(cmd);
        assert!(built.compiled.is_empty(), "{what} compiled units the test build did not: {:?}", built.compiled);
        let extra: Vec<&String> = built.files.difference(&tested.files).collect();
        assert!(extra.is_empty(), "{what} needs artifacts the test build did not produce: {extra:?}");
    }
}
