//! Start-up failures the user can fix get one clear message, and nothing is left running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use devstack::stack::{Options, Stack};
use e2e::*;

async fn start_error(opts: Options) -> String {
    match Stack::start(opts).await {
        Ok(stack) => {
            stack.shutdown().await.unwrap();
            panic!("the stack started");
        }
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_taken_front_door_port_is_named_with_the_flag_to_change_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = options();
    opts.port = taken.local_addr().unwrap().port();
    let err = start_error(opts).await;
    assert!(err.contains("already in use") && err.contains("--port"), "{err}");
}

#[tokio::test]
async fn missing_binaries_say_how_to_build_them() {
    let mut opts = options();
    opts.bin_dir = std::env::temp_dir().join("no-binaries-here");
    let err = start_error(opts).await;
    assert!(err.contains("auth-svc not found") && err.contains("cargo build"), "{err}");
}

#[tokio::test]
async fn a_missing_gateway_config_is_named() {
    let mut opts = options();
    opts.sidecar_config = std::env::temp_dir().join("no-such-sidecar.toml");
    let err = start_error(opts).await;
    assert!(err.contains("no-such-sidecar.toml") && err.contains("--sidecar-config"), "{err}");
}

#[tokio::test]
async fn a_missing_prometheus_says_how_to_install_it_or_turn_it_off() {
    let mut opts = options();
    opts.prometheus = Some(devstack::monitoring::PrometheusOptions {
        program: std::env::temp_dir().join("no-prometheus-here/prometheus"),
        ..prometheus_options()
    });
    let err = start_error(opts).await;
    assert!(err.contains("prometheus not found") && err.contains("apt-get install prometheus"), "{err}");
    assert!(err.contains("--no-prometheus"), "{err}");
}

#[test]
fn the_run_command_takes_a_signing_mode_and_names_a_bad_one() {
    let devstack = bin_dir().join("devstack");
    let out = std::process::Command::new(&devstack).args(["--jwt-alg", "none", "--no-build"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--jwt-alg") && err.contains("RS256") && err.contains("EdDSA"), "{err}");
    let help = std::process::Command::new(&devstack).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--jwt-alg <ALG>"));
}
