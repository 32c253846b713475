//! The file, the environment overlay and the cross-section checks. Each section's own rules are
//! tested beside its conversion.

use super::*;
use std::collections::HashMap;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn with_secret(file: SidecarFile, more: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars = env(more);
    vars.insert("JWT_SECRET".into(), SECRET.into());
    Config::from_file(file, &vars)
}

fn repository_sidecar_toml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sidecar.toml")).unwrap()
}

#[test]
fn defaults_match_the_ecs_layout() {
    let c = with_secret(SidecarFile::default(), &[]).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:3000");
    assert_eq!(c.upstream.addr.to_string(), "127.0.0.1:3001");
    assert_eq!(c.server.metrics.to_string(), "0.0.0.0:9100");
    assert_eq!((c.auth.origin.host.as_str(), c.auth.origin.port), ("auth-service.task-management.local", 3000));
    assert_eq!(c.shutdown.grace_period_secs + c.shutdown.graceful_shutdown_timeout_secs, 20);
    assert_eq!(c.server.keepalive_timeout_secs, 75, "above the ALB's default idle timeout (60 s)");
    assert_eq!(c.upstream.metrics, Some("127.0.0.1:9102".parse().unwrap()));
    assert_eq!(c.auth.resolve_interval, Duration::from_secs(5));
    assert_eq!(c.jwt.rules.max_lifetime_secs, 604_800);
    assert_eq!(c.revocation.max_age, None);
    assert!(c.routes.is_public("/tasks/health"));
    assert_eq!(c.cache.capacity, Some(100_000));
}

#[test]
fn the_repository_sidecar_toml_parses_and_states_the_defaults() {
    let file = SidecarFile::from_toml(&repository_sidecar_toml()).unwrap();
    assert_eq!(file, SidecarFile::default(), "sidecar.toml documents the defaults");
    assert_eq!(file.routes.public, DEFAULT_PUBLIC_ROUTES);
    with_secret(file, &[]).unwrap();
}

#[test]
fn the_file_round_trips_through_toml_and_set_checks_the_schema() {
    let file = SidecarFile::from_toml(&repository_sidecar_toml()).unwrap();
    assert_eq!(SidecarFile::from_toml(&file.to_toml().unwrap()).unwrap(), file);
    let mut f = SidecarFile::default();
    f.set("server.threads", "1").unwrap();
    f.set("cache.enabled", "false").unwrap();
    assert_eq!((f.server.threads, f.cache.enabled), (1, false));
    assert!(f.set("cache.capacty", "1").unwrap_err().contains("capacty"));
    assert!(f.set("cache.enabled", "\"yes\"").is_err());
    assert!(f.set("threads", "1").is_err());
}

/// Keys added since the previous release are written only when set: a config written at the
/// defaults (the run command's, the bench's for its older baseline gateway) holds none of them.
#[test]
fn keys_newer_than_the_last_release_are_left_out_at_their_defaults() {
    let text = SidecarFile::default().to_toml().unwrap();
    for key in [
        "max_header_count",
        "max_header_bytes",
        "max_uri_bytes",
        "max_body_bytes",
        "[rate_limit]",
        "[access_log]",
        "socket",
    ] {
        assert!(!text.contains(key), "{key} written at its default:\n{text}");
    }
    let mut f = SidecarFile::default();
    f.rate_limit.enabled = false;
    let text = f.to_toml().unwrap();
    assert!(text.contains("[rate_limit]") && !text.contains("peers ="), "rate_limit.peers at 0:\n{text}");
    f.set("server.max_header_count", "32").unwrap();
    let text = f.to_toml().unwrap();
    assert!(text.contains("max_header_count = 32"), "{text}");
    assert_eq!(SidecarFile::from_toml(&text).unwrap(), f);
    // A share set for a gateway older than `slow_ms` (the bench's baseline): only the share.
    f.set("access_log.successes", "1").unwrap();
    let text = f.to_toml().unwrap();
    assert!(text.contains("[access_log]") && !text.contains("slow_ms"), "slow_ms at its default:\n{text}");
    assert_eq!(SidecarFile::from_toml(&text).unwrap(), f);
}

#[test]
fn unknown_keys_fail_naming_the_key() {
    let err = SidecarFile::from_toml("[cache]\ncapacty = 5\n").unwrap_err();
    assert!(err.contains("capacty"), "{err}");
    let err = SidecarFile::from_toml("[nope]\n").unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn bad_values_name_the_section_and_key() {
    let mut f = SidecarFile::default();
    f.upstream.read_timeout_ms = 0;
    let err = with_secret(f, &[]).unwrap_err();
    assert_eq!(err.key, "[upstream] read_timeout_ms");
    assert_eq!(err.to_string(), "configuration error: [upstream] read_timeout_ms: 0 is out of range 1..=600000");
    let mut f = SidecarFile::default();
    f.shutdown.grace_period_secs = 300;
    assert_eq!(with_secret(f, &[]).unwrap_err().key, "[shutdown] grace_period_secs");
    let mut f = SidecarFile::default();
    f.server.keepalive_timeout_secs = 0;
    assert_eq!(with_secret(f, &[]).unwrap_err().key, "[server] keepalive_timeout_secs");
    let mut f = SidecarFile::default();
    f.jwt.max_lifetime_secs = 10;
    assert_eq!(with_secret(f, &[]).unwrap_err().key, "[jwt] max_lifetime_secs");
}

#[test]
fn environment_overrides_win_and_their_errors_name_the_variable() {
    let c = with_secret(
        SidecarFile::default(),
        &[
            ("GATEWAY_LISTEN", "127.0.0.1:8080"),
            ("METRICS_ADDR", "127.0.0.1:8081"),
            ("UPSTREAM_ADDR", "127.0.0.1:8082"),
            ("UPSTREAM_METRICS_ADDR", "127.0.0.1:19102"),
            ("AUTH_SERVICE_URL", "http://127.0.0.1:4000/"),
            ("RATE_LIMIT_PEERS_DNS_NAME", "task-service.x.local"),
        ],
    )
    .unwrap();
    assert_eq!((c.server.listen.port(), c.server.metrics.port(), c.upstream.addr.port()), (8080, 8081, 8082));
    assert_eq!(c.upstream.metrics, Some("127.0.0.1:19102".parse().unwrap()));
    assert_eq!((c.auth.origin.url.as_str(), c.auth.origin.port), ("http://127.0.0.1:4000", 4000));
    assert_eq!(c.rate_limit.peers_dns_name.as_deref(), Some("task-service.x.local"));
    assert_eq!(
        with_secret(SidecarFile::default(), &[("UPSTREAM_METRICS_ADDR", "off")]).unwrap().upstream.metrics,
        None
    );

    for (var, value) in [
        ("GATEWAY_LISTEN", "nope"),
        ("METRICS_ADDR", "nope"),
        ("UPSTREAM_ADDR", "task-svc"),
        ("UPSTREAM_SOCKET", "relative.sock"),
        ("UPSTREAM_METRICS_ADDR", "x"),
        ("AUTH_SERVICE_URL", "https://auth"),
        ("RATE_LIMIT_PEERS_DNS_NAME", "task-service:80"),
    ] {
        let err = with_secret(SidecarFile::default(), &[(var, value)]).unwrap_err();
        assert_eq!(err.key, var, "{err}");
    }
    // The same bad value in the file names the file's key.
    let mut f = SidecarFile::default();
    f.upstream.addr = "task-svc".into();
    assert_eq!(with_secret(f, &[]).unwrap_err().key, "[upstream] addr");
}

#[test]
fn an_empty_variable_is_unset() {
    let file = SidecarFile::from_toml("[upstream]\nsocket = \"/run/task-svc/task-svc.sock\"\n").unwrap();
    let c = with_secret(file.clone(), &[("UPSTREAM_SOCKET", "/tmp/t.sock")]).unwrap();
    assert_eq!(c.upstream.socket.as_deref(), Some(Path::new("/tmp/t.sock")));
    // ECS task definitions carry "": the file's value stays, for every override.
    let empty: Vec<(&str, &str)> = [
        "GATEWAY_LISTEN",
        "METRICS_ADDR",
        "UPSTREAM_ADDR",
        "UPSTREAM_SOCKET",
        "UPSTREAM_METRICS_ADDR",
        "AUTH_SERVICE_URL",
        "RATE_LIMIT_PEERS_DNS_NAME",
        "SIDECAR_CONFIG",
    ]
    .into_iter()
    .map(|v| (v, " "))
    .collect();
    let c = with_secret(file.clone(), &empty).unwrap();
    let defaults = with_secret(file, &[]).unwrap();
    assert_eq!(c.upstream, defaults.upstream);
    assert_eq!((c.server, c.auth), (defaults.server, defaults.auth));
    assert_eq!(c.rate_limit, defaults.rate_limit);
    assert!(!ConfigPath::locate(None, &env(&empty)).named);
}

#[test]
fn the_keyring_comes_from_the_environment_and_never_echoes_a_secret() {
    let err = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", "short")])).unwrap_err();
    assert_eq!(err.key, "JWT_SECRET");
    assert!(!err.to_string().contains("short"));
    let err = Config::from_file(SidecarFile::default(), &env(&[])).unwrap_err();
    assert_eq!(err.key, "JWT_SECRET");
}

#[test]
fn the_upstream_cannot_be_the_gateway_itself() {
    let loops = [
        ("0.0.0.0:3000", "127.0.0.1:3000"),
        ("127.0.0.1:3000", "127.0.0.1:3000"),
        ("[::]:3000", "[::1]:3000"),
        ("127.0.0.1:3000", "0.0.0.0:3000"),
    ];
    for (listen, upstream) in loops {
        let err = with_secret(SidecarFile::default(), &[("GATEWAY_LISTEN", listen), ("UPSTREAM_ADDR", upstream)])
            .unwrap_err();
        assert_eq!(err.key, "UPSTREAM_ADDR", "{listen} -> {upstream}");
        assert!(err.reason.contains("[server] listen"), "{err}");
    }
    // Another port, another host, or task-svc's Unix socket: fine.
    for (listen, upstream) in [("0.0.0.0:3000", "127.0.0.1:3001"), ("0.0.0.0:3000", "10.0.0.5:3000")] {
        with_secret(SidecarFile::default(), &[("GATEWAY_LISTEN", listen), ("UPSTREAM_ADDR", upstream)]).unwrap();
    }
    let mut f = SidecarFile::default();
    f.upstream.addr = "127.0.0.1:3000".into();
    f.upstream.socket = "/run/task-svc/task-svc.sock".into();
    with_secret(f, &[]).unwrap();
    // The metrics pass-through cannot fetch the gateway's own metrics either.
    let mut f = SidecarFile::default();
    f.upstream.metrics = "127.0.0.1:9100".into();
    assert_eq!(with_secret(f, &[]).unwrap_err().key, "[upstream] metrics");
}

#[test]
fn config_path_precedence() {
    let named = |p: &str| ConfigPath { path: PathBuf::from(p), named: true };
    let sidecar = env(&[("SIDECAR_CONFIG", "/y.toml")]);
    assert_eq!(ConfigPath::locate(Some(Path::new("/x.toml")), &sidecar), named("/x.toml"));
    assert_eq!(ConfigPath::locate(None, &sidecar), named("/y.toml"));
    assert_eq!(ConfigPath::locate(None, &env(&[])), ConfigPath { path: PathBuf::from("sidecar.toml"), named: false });
}

#[test]
fn a_missing_file_is_all_defaults_only_when_not_named() {
    let missing = std::env::temp_dir().join(format!("no-such-sidecar-{}.toml", std::process::id()));
    let vars = env(&[("JWT_SECRET", SECRET)]);
    let err = Config::load(&ConfigPath { path: missing.clone(), named: true }, &vars).unwrap_err();
    assert_eq!(err.key, missing.display().to_string());
    let c = Config::load(&ConfigPath { path: missing.clone(), named: false }, &vars).unwrap();
    assert_eq!(c.server.listen.port(), 3000);
    // The health check falls back to the default port, with METRICS_ADDR still applied.
    let at = ConfigPath { path: missing, named: true };
    assert_eq!(Config::metrics_addr(&at, &env(&[])).port(), 9100);
    assert_eq!(Config::metrics_addr(&at, &env(&[("METRICS_ADDR", "0.0.0.0:9200")])).port(), 9200);
}
