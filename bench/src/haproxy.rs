//! HAProxy as a peer of the gateway: the same hop made by a mature C proxy, with and without
//! a JWT check, so the bench can say what the gateway's hop costs against the best a sidecar
//! can do (issue 12). Debian's `haproxy` (2.6) is installed by `scripts/setup.sh`.
//!
//! [`Haproxy`] is the typed configuration; [`Haproxy::render`] writes `haproxy.cfg` from it
//! and [`Haproxy::launch`] starts it through devstack's launcher, in the foreground (`-db`),
//! so SIGTERM stops it like every other process of the run.
//!
//! The JWT variant does what the gateway does on a request, as far as HAProxy 2.6's built-in
//! fetches and converters reach (`jwt_header_query`, `jwt_verify`, `jwt_payload_query`):
//! the token is taken from `Authorization: Bearer`; `alg` must be `HS256` (no `none`, no
//! HS384/RS256 confusion); the HMAC-SHA256 signature is checked with the shared secret; `exp`
//! must lie after `date()`; identity headers in any spelling (`-` or `_`, any case: HAProxy
//! lower-cases header names) and `Authorization` are removed; `X-User-Id` is set from the
//! payload's `user_id`. Refusals are a JSON 401 with `WWW-Authenticate: Bearer`. It does not
//! check `nbf`, `iat`, `iss`, `aud`, the key id or revocations, and sets no name or e-mail
//! header: it is cheaper than the gateway by that much.
//!
//! The logged variant (`access_log`) writes one line per request to its standard output in
//! HAProxy's HTTP log format (`option httplog`), as the gateway writes one access line per
//! request: the like-for-like peer of the gateway's defaults.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use devstack::launch::{Launch, Probe};
use platform::Secret;

/// Where Debian's package installs it.
pub const DEFAULT_PROGRAM: &str = "/usr/sbin/haproxy";

/// Where a proxy sends what it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Tcp(SocketAddr),
    /// A Unix domain socket path (absolute).
    Unix(PathBuf),
}

/// Which of the bench's HAProxy peers a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaproxyPeer {
    /// Forwarding alone (path `haproxy`).
    Plain,
    /// The JWT check, no log (path `haproxy-jwt`).
    Jwt,
    /// The JWT check and an access line per request (path `haproxy-jwt-log`).
    JwtLogged,
}

/// The HS256 check (see the module comment).
#[derive(Clone, PartialEq, Eq)]
pub struct JwtCheck {
    pub secret: Secret,
}

impl std::fmt::Debug for JwtCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCheck").field("secret", &"[redacted]").finish()
    }
}

/// One HAProxy instance: a frontend on `listen`, one backend server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Haproxy {
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// `None`: a plain proxy that forwards requests unchanged (the floor of any extra hop;
    /// the bench sends it `X-User-Id` itself, as to task-svc directly).
    pub jwt: Option<JwtCheck>,
    /// Paths forwarded without a token (exact match), as the gateway's `[routes] public`.
    pub public_routes: Vec<String>,
    /// `nbthread`, as the gateway's `[server] threads`.
    pub threads: usize,
    /// One line per request on standard output (`log stdout format raw`, `option httplog`):
    /// client, times, status, bytes, termination state and request line.
    pub access_log: bool,
}

/// The identity headers a client may not send, in HAProxy's lower-cased names, `-` or `_`:
/// the rule of `platform::identity::is_identity_header`.
const IDENTITY_HEADERS: &str =
    r"^(x[-_](user|auth|authenticated)[-_].*|x[-_]forwarded[-_]user|x[-_]remote[-_]user|remote[-_]user)$";

/// `http-request return` of a JSON 401 with `WWW-Authenticate: Bearer` when `condition` holds.
fn deny(message: &str, condition: &str) -> String {
    format!(
        "    http-request return status 401 content-type application/json string '{{\"error\":\"Unauthorized\",\"message\":\"{message}\"}}' hdr www-authenticate Bearer if !public {condition}"
    )
}

/// A string HAProxy's config parser reads back unchanged inside double quotes; `None` for
/// characters it would treat specially or that cannot appear in a config line.
fn quoted(value: &str) -> Option<String> {
    let ok = value.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '$' | '\'' | '#' | '%'));
    ok.then(|| format!("\"{value}\""))
}

impl Haproxy {
    /// `haproxy.cfg` for these settings. Fails on values the config syntax cannot carry
    /// (a secret with quotes, backslashes, `$`, `%`, `#` or spaces; a relative socket path;
    /// a public route that is not a plain path).
    pub fn render(&self) -> Result<String> {
        let mut c = String::new();
        let _ = writeln!(c, "# Written by the bench (bench/src/haproxy.rs); see docs/benchmarks.md.");
        let _ = writeln!(c, "global\n    nbthread {}\n    maxconn 8192", self.threads.max(1));
        // Without `access_log`, no log at all (HAProxy logs nowhere unless told where).
        if self.access_log {
            let _ = writeln!(c, "    log stdout format raw local0 info");
        }
        let _ = writeln!(
            c,
            "defaults\n    mode http\n    option http-keep-alive\n    timeout connect 2s\n    timeout client 75s\n    timeout server 30s\n    timeout http-keep-alive 75s"
        );
        if self.access_log {
            let _ = writeln!(c, "    log global\n    option httplog");
        }
        let _ = writeln!(c, "frontend edge\n    bind {}", self.listen);
        if let Some(jwt) = &self.jwt {
            for r in &self.public_routes {
                if !r.starts_with('/') || !r.chars().all(|c| c.is_ascii_graphic() && c != '#' && c != '\\') {
                    bail!("public route {r:?} is not a plain path");
                }
            }
            let secret = quoted(jwt.secret.expose())
                .context("the JWT secret has characters haproxy.cfg cannot carry in a quoted string")?;
            let public = if self.public_routes.is_empty() {
                "    acl public always_false".to_owned()
            } else {
                format!("    acl public path {}", self.public_routes.join(" "))
            };
            let _ = writeln!(c, "{public}");
            let _ = writeln!(c, "    http-request set-var(txn.bearer) http_auth_bearer if !public");
            let _ =
                writeln!(c, "    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg') if !public");
            let _ = writeln!(c, "{}", deny("Invalid or missing token", "!{ var(txn.alg) -m str HS256 }"));
            let verify = format!("!{{ var(txn.bearer),jwt_verify(txn.alg,{secret}) -m int 1 }}");
            let _ = writeln!(c, "{}", deny("Invalid token", &verify));
            let _ = writeln!(
                c,
                "    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int') if !public"
            );
            let _ = writeln!(c, "    http-request set-var(txn.now) date() if !public");
            let _ = writeln!(c, "{}", deny("Token expired", "!{ var(txn.exp),sub(txn.now) -m int gt 0 }"));
        }
        if self.jwt.is_some() {
            let _ = writeln!(c, "    http-request del-header {IDENTITY_HEADERS} -m reg");
            let _ = writeln!(c, "    http-request del-header authorization if !public");
            let _ = writeln!(
                c,
                "    http-request set-header x-user-id %[var(txn.bearer),jwt_payload_query('$.user_id','int')] if !public"
            );
        }
        let _ = writeln!(c, "    default_backend task-svc");
        let server = match &self.upstream {
            Upstream::Tcp(addr) => addr.to_string(),
            Upstream::Unix(path) => {
                let p = path.to_str().filter(|p| p.starts_with('/') && !p.contains(char::is_whitespace));
                p.with_context(|| format!("{} must be an absolute path without spaces", path.display()))?.to_owned()
            }
        };
        let _ = writeln!(c, "backend task-svc\n    http-reuse always\n    server task-svc {server}");
        Ok(c)
    }

    /// Writes the config to `config_path` and returns the process (`haproxy -db -f PATH`),
    /// ready once `GET /tasks/health` through it answers 200.
    pub fn launch(&self, name: &str, program: &Path, config_path: &Path) -> Result<Launch> {
        std::fs::write(config_path, self.render()?)
            .with_context(|| format!("could not write {}", config_path.display()))?;
        if !program.exists() {
            bail!(
                "{} not found: install HAProxy with `apt-get install -y haproxy` (scripts/setup.sh does)",
                program.display()
            );
        }
        Ok(Launch::new(name, program)
            .args(["-db", "-f"])
            .arg(config_path.display().to_string())
            .ready(vec![Probe::http(self.listen, "/tasks/health")]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_proxy() -> Haproxy {
        Haproxy {
            listen: "127.0.0.1:8000".parse().unwrap(),
            upstream: Upstream::Tcp("127.0.0.1:3001".parse().unwrap()),
            jwt: Some(JwtCheck { secret: Secret::new("bench-secret-0123456789abcdef0123456789abcdef") }),
            public_routes: vec!["/tasks/health".into(), "/tasks/openapi.json".into()],
            threads: 2,
            access_log: false,
        }
    }

    #[test]
    fn the_jwt_proxy_checks_alg_signature_and_exp_and_sets_the_identity() {
        let cfg = jwt_proxy().render().unwrap();
        assert!(cfg.contains("bind 127.0.0.1:8000"), "{cfg}");
        assert!(cfg.contains("acl public path /tasks/health /tasks/openapi.json"), "{cfg}");
        assert!(cfg.contains(r#"!{ var(txn.alg) -m str HS256 }"#), "{cfg}");
        assert!(
            cfg.contains(r#"jwt_verify(txn.alg,"bench-secret-0123456789abcdef0123456789abcdef") -m int 1"#),
            "{cfg}"
        );
        assert!(cfg.contains("var(txn.exp),sub(txn.now) -m int gt 0"), "{cfg}");
        assert!(cfg.contains("del-header authorization"), "{cfg}");
        assert!(cfg.contains("set-header x-user-id %[var(txn.bearer),jwt_payload_query('$.user_id','int')]"), "{cfg}");
        assert!(cfg.contains("server task-svc 127.0.0.1:3001"), "{cfg}");
        assert!(cfg.contains("nbthread 2"), "{cfg}");
    }

    #[test]
    fn the_plain_proxy_forwards_requests_unchanged() {
        let plain = Haproxy { jwt: None, upstream: Upstream::Unix("/run/task.sock".into()), ..jwt_proxy() };
        let cfg = plain.render().unwrap();
        assert!(!cfg.contains("jwt"), "{cfg}");
        assert!(!cfg.contains("http-request"), "{cfg}");
        assert!(jwt_proxy().render().unwrap().contains("del-header ^(x[-_](user|auth|authenticated)"));
        assert!(cfg.contains("server task-svc /run/task.sock"), "{cfg}");
        assert!(!cfg.contains("log"), "no access log unless asked: {cfg}");
    }

    #[test]
    fn the_logged_peer_logs_each_request_to_stdout_in_the_http_format() {
        let cfg = Haproxy { access_log: true, ..jwt_proxy() }.render().unwrap();
        assert!(
            cfg.contains("global\n    nbthread 2\n    maxconn 8192\n    log stdout format raw local0 info\n"),
            "{cfg}"
        );
        assert!(cfg.contains("    log global\n    option httplog\n"), "{cfg}");
        assert!(cfg.contains("jwt_verify"), "the same check as the unlogged peer: {cfg}");
    }

    #[test]
    fn values_the_syntax_cannot_carry_are_refused() {
        let mut p = jwt_proxy();
        p.jwt = Some(JwtCheck { secret: Secret::new("has\"quote-0123456789abcdef0123456789") });
        let err = p.render().unwrap_err().to_string();
        assert!(!err.contains("has\"quote"), "the secret stays out of errors: {err}");
        let mut p = jwt_proxy();
        p.public_routes = vec!["/x y".into()];
        assert!(p.render().is_err());
        let p = Haproxy { upstream: Upstream::Unix("relative.sock".into()), ..jwt_proxy() };
        assert!(p.render().is_err());
        assert!(!format!("{:?}", jwt_proxy()).contains("bench-secret"));
    }

    /// An upstream that answers every request with the headers it received, as JSON.
    async fn echo_upstream() -> SocketAddr {
        use axum::http::HeaderMap;
        let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
            let seen: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::from(v.to_str().unwrap_or("?"))))
                .collect();
            axum::Json(serde_json::Value::Object(seen))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// The JWT peer, started as the bench starts it, really decides: it forwards good tokens
    /// with the identity set and spoofs removed, and refuses missing, forged, expired and
    /// wrong-algorithm tokens. Needs Debian's haproxy (scripts/setup.sh installs it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_jwt_peer_forwards_good_tokens_and_refuses_bad_ones() {
        use platform::keyring::{Claims, Keyring};
        let secret = "bench-secret-0123456789abcdef0123456789abcdef";
        let upstream = echo_upstream().await;
        let listen = devstack::launch::loopback(devstack::postgres::free_port().unwrap());
        let proxy = Haproxy {
            listen,
            upstream: Upstream::Tcp(upstream),
            jwt: Some(JwtCheck { secret: Secret::new(secret) }),
            public_routes: vec!["/tasks/health".into()],
            threads: 1,
            access_log: true,
        };
        let dir = std::env::temp_dir().join(format!("bench-haproxy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = Path::new(DEFAULT_PROGRAM);
        assert!(program.exists(), "{DEFAULT_PROGRAM} is missing: run scripts/setup.sh (it installs haproxy)");
        let launch = proxy.launch("haproxy-jwt", program, &dir.join("haproxy.cfg")).unwrap();
        let mut process = launch
            .output(devstack::process::Output::File(dir.join("haproxy.log")))
            .start(std::time::Duration::from_secs(30))
            .await
            .unwrap();

        let now = chrono::Utc::now().timestamp();
        let ring = Keyring::new(&Secret::new(secret), None).unwrap();
        let good = ring.issue(&Claims::new(42, "alice", "a@example.com", now, 3600)).unwrap();
        let expired = ring.issue(&Claims::new(42, "alice", "a@example.com", now - 7200, 3600)).unwrap();
        let other = Keyring::new(&Secret::new("another-secret-0123456789abcdef0123456789"), None).unwrap();
        let forged = other.issue(&Claims::new(42, "alice", "a@example.com", now, 3600)).unwrap();
        let (_, rest) = good.split_once('.').unwrap();
        // {"alg":"none","typ":"JWT"} and {"alg":"HS512","typ":"JWT"} on the good token's payload
        // and signature.
        let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{rest}");
        let alg_hs512 = format!("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{rest}");

        let http = reqwest::Client::new();
        let url = format!("http://{listen}/tasks/7");
        let r = http
            .get(&url)
            .bearer_auth(&good)
            .header("X-User-Id", "999")
            .header("X_User_Email", "evil@example.com")
            .header("x-authenticated-user", "root")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let seen: serde_json::Value = r.json().await.unwrap();
        assert_eq!(seen["x-user-id"], "42", "{seen}");
        for gone in ["authorization", "x_user_email", "x-authenticated-user"] {
            assert!(seen.get(gone).is_none(), "{gone} reached the upstream: {seen}");
        }
        for (name, token) in
            [("expired", &expired), ("forged", &forged), ("alg none", &alg_none), ("alg HS512", &alg_hs512)]
        {
            let r = http.get(&url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 401, "{name}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer", "{name}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "Unauthorized", "{name}");
        }
        let r = http.get(&url).header("X-User-Id", "42").send().await.unwrap();
        assert_eq!(r.status(), 401, "no token");
        let r = http.get(format!("http://{listen}/tasks/health")).send().await.unwrap();
        assert_eq!(r.status(), 200, "public route without a token");
        // The access log: one line per request, the forwarded and the refused ones alike.
        let log = dir.join("haproxy.log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // The launcher's readiness probes log too: only the test's own requests count.
            let lines: Vec<String> =
                text.lines().filter(|l| l.contains(" /tasks/7 HTTP/1.1\"")).map(str::to_owned).collect();
            if lines.len() >= 6 || std::time::Instant::now() > deadline {
                break lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(lines.len(), 6, "one access line per request: {lines:#?}");
        assert!(lines[0].contains(" 200 ") && lines[0].contains("\"GET /tasks/7 HTTP/1.1\""), "{}", lines[0]);
        assert!(lines[1].contains(" 401 "), "{}", lines[1]);
        assert!(lines.iter().all(|l| !l.contains(&good)), "no token in the log: {lines:#?}");

        let _ = process.stop(std::time::Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
