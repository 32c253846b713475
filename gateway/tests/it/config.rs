//! Bad configuration stops the binary at start-up with a message naming the key.
#![allow(clippy::unwrap_used)]

use testkit::harness::*;

fn run_gateway(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let path = log_dir().join(format!("bad-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, toml).unwrap();
    let mut cmd = std::process::Command::new(bin("gateway"));
    cmd.arg("--config").arg(&path);
    for k in ["JWT_SECRET", "JWT_SECRET_PREVIOUS", "JWT_SECRET_ARN", "JWT_ALG", "JWT_PRIVATE_KEY"] {
        cmd.env_remove(k);
    }
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

    let (code, err) = run_gateway("[rate_limit]\nfleet_rate_per_sec = 0\n", &[("JWT_SECRET", OLD_SECRET)]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("[rate_limit] fleet_rate_per_sec: 0 is out of range"), "{err}");
    let (code, err) = run_gateway("[rate_limit]\npeers_dns_name = \"http://x:1\"\n", &[("JWT_SECRET", OLD_SECRET)]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("[rate_limit] peers_dns_name"), "{err}");

    let missing = log_dir().join("does-not-exist.toml");
    let out = std::process::Command::new(bin("gateway"))
        .arg("--config")
        .arg(&missing)
        .env("JWT_SECRET", OLD_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

/// RS256/EdDSA: the gateway must not be able to sign, so any secret or private key setting
/// stops it at start, naming the variable and never echoing its value; a bad JWT_ALG too.
#[test]
fn asymmetric_modes_refuse_every_key_setting() {
    for (alg, key) in [("RS256", "JWT_SECRET"), ("EdDSA", "JWT_SECRET_ARN"), ("RS256", "JWT_PRIVATE_KEY")] {
        let (code, err) = run_gateway("", &[("JWT_ALG", alg), (key, OLD_SECRET)]);
        assert_eq!(code, Some(78), "{alg} {key}: {err}");
        assert!(err.contains(key) && !err.contains(OLD_SECRET), "{err}");
    }
    let (code, err) = run_gateway("", &[("JWT_ALG", "none")]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("JWT_ALG"), "{err}");
}
