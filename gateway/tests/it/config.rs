//! Bad configuration stops the binary at start-up with a message naming the key.
#![allow(clippy::unwrap_used)]

use testkit::harness::*;

fn run_gateway(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let path = log_dir().join(format!("bad-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, toml).unwrap();
    let mut cmd = std::process::Command::new(bin("gateway"));
    cmd.arg("--config").arg(&path).env_remove("JWT_SECRET").env_remove("JWT_SECRET_ARN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_config_fails_fast_naming_the_key() {
    let (code, err) = run_gateway("[cache]\ncapacty = 10\n", &[("JWT_SECRET", OLD_SECRET)]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("capacty"), "{err}");

    let (code, err) = run_gateway("[upstream]\nread_timeout_ms = 0\n", &[("JWT_SECRET", OLD_SECRET)]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("[upstream] read_timeout_ms: 0 is out of range"), "{err}");

    let (code, err) = run_gateway("", &[("JWT_SECRET", "too-short-secret-value")]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("JWT_SECRET") && !err.contains("too-short-secret-value"), "{err}");

    let (code, err) = run_gateway("", &[("JWT_SECRET", OLD_SECRET), ("UPSTREAM_ADDR", "task-svc")]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("UPSTREAM_ADDR"), "{err}");

    let missing = log_dir().join("does-not-exist.toml");
    let out = std::process::Command::new(bin("gateway"))
        .arg("--config")
        .arg(&missing)
        .env("JWT_SECRET", OLD_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}
