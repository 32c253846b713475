//! Building the binaries so that every entry point shares one build per profile.
//!
//! Cargo resolves dependency features for the packages a command selects. `-p devstack`,
//! `-p auth-svc -p task-svc -p gateway`, `-p bench` and the test build each select a different
//! subset, so each would compile its own copy of the dependency tree (pingora, clap, the AWS
//! SDK, ...). Every build here therefore selects the whole workspace (`--workspace`, at the
//! workspace root) and narrows only the *targets* with `--bin`: one feature resolution, the
//! test build's units are a superset of these, and a build after another compiles nothing
//! new. `devstack/tests/one_build.rs` checks that property. See docs/local-run.md, "One build".

use std::path::PathBuf;
use std::process::Command;

use crate::stack::repo_root;

/// The binaries the run command and the bench start.
pub const SERVICES: [&str; 3] = ["auth-svc", "task-svc", "gateway"];

/// A cargo build profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    /// The profile the running binary was built with.
    pub fn current() -> Self {
        if cfg!(debug_assertions) { Profile::Dev } else { Profile::Release }
    }

    /// Its output directory under `target/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// `cargo build --workspace --bin <bins>...` at the workspace root, in `profile`: the
/// command line every entry point uses. `$CARGO` (set by `cargo run`) is the cargo to use.
pub fn cargo_build(bins: &[&str], profile: Profile) -> Command {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace"]);
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    cmd
}

/// `cargo` (`$CARGO` when set, as under `cargo run`) in the workspace root, without the
/// variables cargo sets for the crate that is running (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
/// ...; `cargo run` and the test runners set them). Build scripts that declare
/// `rerun-if-env-changed` for them (ring's does) would otherwise see a different value than in
/// a build started from a shell, and about 35 units (ring, rustls, sqlx, the AWS SDK, and all
/// that depends on them) would be rebuilt on every switch between the two.
pub fn cargo() -> Command {
    let cargo: PathBuf = std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if is_crate_variable(key) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The variables cargo sets for a running crate (The Cargo Book, "Environment variables Cargo
/// sets for crates"), as opposed to the user's own `CARGO_HOME`, `CARGO_TARGET_DIR`, ....
fn is_crate_variable(key: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// The services' build that the run command (under `cargo run`) and `bench` run before
/// starting them.
pub fn services(profile: Profile) -> Command {
    cargo_build(&SERVICES, profile)
}

/// A readable form of `cmd` for logs: `cargo build --workspace --bin ...`.
pub fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("cargo {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::is_crate_variable;

    #[test]
    fn only_the_running_crates_variables_are_removed() {
        for key in ["CARGO_PKG_NAME", "CARGO_MANIFEST_DIR", "CARGO_CRATE_NAME", "CARGO_BIN_EXE_gateway"] {
            assert!(is_crate_variable(key), "{key}");
        }
        for key in ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO", "CARGO_BUILD_JOBS", "PATH"] {
            assert!(!is_crate_variable(key), "{key}");
        }
    }
}
