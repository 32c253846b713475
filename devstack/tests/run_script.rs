//! `scripts/run.sh --no-build` runs the release binaries already built, without cargo: `cargo
//! run` would rebuild whatever its records do not match (binaries copied into a checkout, a
//! moved one), which is what the flag says it does not do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `scripts/run.sh --no-build <flag>` with `target` as `CARGO_TARGET_DIR` and a `cargo` on
/// `PATH` that fails if it is called ([`path_with_failing_cargo`]).
fn run_without_cargo(target: &Path, flag: &str) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    Command::new(root.join("scripts/run.sh"))
        .args(["--no-build", flag])
        .env("CARGO_TARGET_DIR", target)
        .env("PATH", path_with_failing_cargo(target))
        .output()
        .unwrap()
}

/// An empty directory of this test's own, for `CARGO_TARGET_DIR`.
fn target_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("run-script-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("release")).unwrap();
    dir
}

#[test]
fn no_build_without_a_release_build_says_so_and_builds_nothing() {
    let target = target_dir("empty");
    // --version: if a regression ran a devstack after all, it prints and exits instead of
    // starting the whole stack.
    let out = run_without_cargo(&target, "--version");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("cargo was called"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--no-build") && stderr.contains("devstack is not built"), "{stderr}");
    assert_eq!(std::fs::read_dir(target.join("release")).unwrap().count(), 0, "something was built");
    std::fs::remove_dir_all(&target).unwrap();
}

/// A `cargo` first on `PATH` that reports being called and fails: `cargo run --quiet` would
/// print the same help, so only this tells the two apart.
fn path_with_failing_cargo(target: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let shim = target.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    std::fs::write(shim.join("cargo"), "#!/bin/sh\necho \"cargo was called: $*\" >&2\nexit 97\n").unwrap();
    std::fs::set_permissions(shim.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", shim.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn no_build_runs_the_built_run_command_itself() {
    let target = target_dir("built");
    std::fs::copy(env!("CARGO_BIN_EXE_devstack"), target.join("release/devstack")).unwrap();
    let out = run_without_cargo(&target, "--help");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!stderr.contains("cargo was called"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("--sidecar-set") && stdout.contains("--no-build"), "{stdout}");
    std::fs::remove_dir_all(&target).unwrap();
}
