use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn defaults_match_the_ecs_layout() {
    let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
    assert_eq!(c.upstream.to_string(), "127.0.0.1:3001");
    assert_eq!(c.metrics.to_string(), "0.0.0.0:9100");
    assert_eq!(c.auth_host, "auth-service.task-management.local");
    assert_eq!(c.auth_port, 3000);
    assert_eq!(c.grace_period_secs + c.graceful_shutdown_timeout_secs, 20);
    assert_eq!(c.keepalive_timeout_secs, 75, "above the ALB's default idle timeout (60 s)");
    assert_eq!(c.upstream_metrics, Some("127.0.0.1:9102".parse().unwrap()));
    assert_eq!(c.resolve_interval, Duration::from_secs(5));
    assert!(c.is_public("/tasks/health"));
    assert!(c.is_public("/tasks/openapi.json"));
    for path in ["/tasks/health/", "/tasks", "/tasks/openapi.json/", "/tasks/OPENAPI.json", "/tasks/openapi.jsonx"] {
        assert!(!c.is_public(path), "{path}");
    }
}

#[test]
fn the_repository_sidecar_toml_parses_and_states_the_default_public_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sidecar.toml")).unwrap();
    let file = parse_file(&text).unwrap();
    assert_eq!(file.routes.public, DEFAULT_PUBLIC_ROUTES);
    Config::from_file(file, &env(&[("JWT_SECRET", SECRET)])).unwrap();
}

#[test]
fn the_file_round_trips_through_toml_and_set_checks_the_schema() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sidecar.toml")).unwrap();
    let file = SidecarFile::from_toml(&text).unwrap();
    assert_eq!(SidecarFile::from_toml(&file.to_toml().unwrap()).unwrap(), file);
    let mut f = SidecarFile::default();
    f.set("server.threads", "1").unwrap();
    f.set("cache.enabled", "false").unwrap();
    assert_eq!((f.server.threads, f.cache.enabled), (1, false));
    assert!(f.set("cache.capacty", "1").unwrap_err().contains("capacty"));
    assert!(f.set("cache.enabled", "\"yes\"").is_err());
    assert!(f.set("threads", "1").is_err());
}

#[test]
fn unknown_keys_fail_naming_the_key() {
    let err = parse_file("[cache]\ncapacty = 5\n").unwrap_err();
    assert!(err.contains("capacty"), "{err}");
    let err = parse_file("[nope]\n").unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn environment_overrides_win_and_bad_values_name_the_key() {
    let c = Config::from_file(
        SidecarFile::default(),
        &env(&[
            ("JWT_SECRET", SECRET),
            ("GATEWAY_LISTEN", "127.0.0.1:8080"),
            ("AUTH_SERVICE_URL", "http://127.0.0.1:4000/"),
        ]),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert_eq!((c.auth_host.as_str(), c.auth_port), ("127.0.0.1", 4000));
    let err = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_ADDR", "nope")]))
        .unwrap_err();
    assert_eq!(err.key, "UPSTREAM_ADDR");
    let err = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", "short")])).unwrap_err();
    assert_eq!(err.key, "JWT_SECRET");
    assert!(!err.to_string().contains("short"));
    let err = Config::from_file(SidecarFile::default(), &env(&[])).unwrap_err();
    assert_eq!(err.key, "JWT_SECRET");
    let mut f = SidecarFile::default();
    f.shutdown.grace_period_secs = 300;
    assert_eq!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err().key, "shutdown.grace_period_secs");
}

#[test]
fn keepalive_and_task_metrics_pass_through_are_configurable() {
    let file = parse_file("[server]\nkeepalive_timeout_secs = 120\n[upstream]\nmetrics = \"off\"\n").unwrap();
    let c = Config::from_file(file, &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.keepalive_timeout_secs, 120);
    assert_eq!(c.upstream_metrics, None);
    let c = Config::from_file(
        SidecarFile::default(),
        &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_METRICS_ADDR", "127.0.0.1:19102")]),
    )
    .unwrap();
    assert_eq!(c.upstream_metrics, Some("127.0.0.1:19102".parse().unwrap()));
    let mut f = SidecarFile::default();
    f.server.keepalive_timeout_secs = 0;
    let err = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err();
    assert_eq!(err.key, "server.keepalive_timeout_secs");
    let err =
        Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_METRICS_ADDR", "x")]))
            .unwrap_err();
    assert_eq!(err.key, "UPSTREAM_METRICS_ADDR");
}

#[test]
fn token_rules_and_revocation_settings_are_checked() {
    let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.rules.max_lifetime_secs, 604_800);
    assert_eq!(c.revocation_poll_interval, Duration::from_secs(2));
    assert_eq!(c.revocation_max_age, None);
    let mut f = SidecarFile::default();
    f.revocation.max_age_secs = 2;
    let err = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err();
    assert_eq!(err.key, "revocation.max_age_secs");
    let mut f = SidecarFile::default();
    f.revocation.max_age_secs = 30;
    f.jwt.max_lifetime_secs = 3600;
    let c = Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.revocation_max_age, Some(Duration::from_secs(30)));
    assert_eq!(c.rules.max_lifetime_secs, 3600);
    let mut f = SidecarFile::default();
    f.jwt.max_lifetime_secs = 10;
    assert_eq!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap_err().key, "jwt.max_lifetime_secs");
}

#[test]
fn the_upstream_can_be_a_unix_socket_from_the_file_or_the_environment() {
    let c = Config::from_file(SidecarFile::default(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.upstream_socket, None, "TCP by default");
    let file = parse_file("[upstream]\nsocket = \"/run/task-svc/task-svc.sock\"\n").unwrap();
    let c = Config::from_file(file.clone(), &env(&[("JWT_SECRET", SECRET)])).unwrap();
    assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/run/task-svc/task-svc.sock")));
    // The environment wins; an empty value there is unset, as for every key (ECS task
    // definitions carry ""), so the file's socket stays.
    let c =
        Config::from_file(file.clone(), &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_SOCKET", "/tmp/t.sock")])).unwrap();
    assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/tmp/t.sock")));
    let c = Config::from_file(file, &env(&[("JWT_SECRET", SECRET), ("UPSTREAM_SOCKET", "")])).unwrap();
    assert_eq!(c.upstream_socket.as_deref(), Some(Path::new("/run/task-svc/task-svc.sock")));
    let err =
        Config::from_file(parse_file("[upstream]\nsocket = \"task.sock\"\n").unwrap(), &env(&[("JWT_SECRET", SECRET)]))
            .unwrap_err();
    assert_eq!(err.key, "upstream.socket");
    // Written out only when set: a file for an older gateway does not gain the key.
    assert!(!SidecarFile::default().to_toml().unwrap().contains("socket"));
}

#[test]
fn cache_can_be_disabled() {
    let mut f = SidecarFile::default();
    f.cache.capacity = 0;
    assert!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap().cache_capacity.is_none());
    let mut f = SidecarFile::default();
    f.cache.enabled = false;
    assert!(Config::from_file(f, &env(&[("JWT_SECRET", SECRET)])).unwrap().cache_capacity.is_none());
}

#[test]
fn config_path_precedence() {
    let args = vec!["gateway".to_owned(), "--config".to_owned(), "/x.toml".to_owned()];
    assert_eq!(config_path(&args, &env(&[("SIDECAR_CONFIG", "/y.toml")])), ("/x.toml".into(), true));
    assert_eq!(config_path(&["--config=/z".to_owned()], &env(&[])), ("/z".into(), true));
    assert_eq!(config_path(&[], &env(&[("SIDECAR_CONFIG", "/y.toml")])), ("/y.toml".into(), true));
    assert_eq!(config_path(&[], &env(&[])), ("sidecar.toml".into(), false));
}

#[test]
fn auth_url_must_be_a_plain_origin() {
    assert!(parse_http_url("https://x").is_err());
    assert!(parse_http_url("http://x/auth").is_err());
    assert_eq!(parse_http_url("http://x").unwrap(), ("x".into(), 80));
}
