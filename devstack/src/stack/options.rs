//! What a run is asked for ([`Options`]) and what it reports ([`Storage`], [`ProcessInfo`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use front_door::FrontDoorConfig;

use platform::keyring::Alg;

use crate::launch::KeyringSource;
use crate::logs::LogSink;
use crate::monitoring::PrometheusOptions;

/// What to start, and how. [`Options::new`] gives the run command's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// The front door (ALB stand-in) port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub auth_instances: usize,
    pub task_instances: usize,
    /// First of the internal ports, used consecutively (see [`Stack::start`](super::Stack::start)); `None` picks
    /// free ports.
    pub base_port: Option<u16>,
    /// PostgreSQL's port; `None` picks a free one.
    pub pg_port: Option<u16>,
    /// Keeps the cluster and the run's files here between runs; `None` uses a temporary
    /// directory that is removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// Use this server instead of starting a cluster (the services migrate it on start).
    pub database_url: Option<String>,
    /// Where the auth-svc, task-svc and gateway binaries are.
    pub bin_dir: PathBuf,
    /// The gateway's config file (the repository's `sidecar.toml`).
    pub sidecar_config: PathBuf,
    /// Overrides `[shutdown] grace_period_secs` of the sidecar config (in a copy in the run
    /// directory): pingora waits the whole grace on SIGTERM even when idle.
    pub gateway_grace_secs: Option<u64>,
    /// Overrides `[shutdown] graceful_shutdown_timeout_secs` likewise.
    pub gateway_shutdown_timeout_secs: Option<u64>,
    /// `SHUTDOWN_GRACE_SECS` for auth-svc and task-svc; `None` keeps their default (20 s).
    pub service_grace_secs: Option<u64>,
    pub front_door: FrontDoorConfig,
    /// How tokens are signed when `keyring` is `None`: HS256 (the shared `jwt_secret`), or
    /// RS256/EdDSA with a key pair generated for the run (auth-svc holds the private key, the
    /// gateways verify with its JWKS).
    pub jwt_alg: Alg,
    /// The shared HS256 secret; `None` generates 32 random bytes (hex) for this run.
    pub jwt_secret: Option<String>,
    /// Where every auth-svc and gateway gets its keyring; `None` follows `jwt_alg`. An RS256/EdDSA
    /// signing key here goes to auth-svc only; the gateways then load its JWKS.
    /// Tests pass Secrets Manager on moto to rotate keys as on ECS.
    pub keyring: Option<KeyringSource>,
    /// `JWT_KEYRING_REFRESH_SECS` per auth-svc instance (index 0 is auth-1); instances beyond
    /// the list keep the default. Lets a test hold two instances on different keyrings.
    pub auth_keyring_refresh_secs: Vec<u64>,
    /// `table.key = value` changes to the gateways' config (schema-checked, e.g.
    /// `("revocation.poll_interval_secs", "1")`).
    pub sidecar_set: Vec<(String, String)>,
    /// Variables set on every auth-svc, task-svc and gateway on top of the parent's environment
    /// (which they inherit: an `OTEL_EXPORTER_OTLP_ENDPOINT` the user set reaches them as is).
    /// Tests point the services at their own OTLP receiver with it.
    pub service_env: Vec<(String, String)>,
    pub logs: LogSink,
    /// How long each process may take to become healthy.
    pub ready_timeout: Duration,
    /// The local Prometheus scraping every process; `None` starts none (`--no-prometheus`).
    pub prometheus: Option<PrometheusOptions>,
}

impl Options {
    pub fn new(bin_dir: PathBuf) -> Self {
        Self {
            port: 8080,
            auth_instances: 2,
            task_instances: 2,
            base_port: None,
            pg_port: None,
            data_dir: None,
            database_url: None,
            bin_dir,
            sidecar_config: repo_root().join("sidecar.toml"),
            gateway_grace_secs: None,
            gateway_shutdown_timeout_secs: None,
            service_grace_secs: None,
            front_door: FrontDoorConfig::default(),
            jwt_alg: Alg::HS256,
            jwt_secret: None,
            keyring: None,
            auth_keyring_refresh_secs: Vec::new(),
            sidecar_set: Vec::new(),
            service_env: Vec::new(),
            logs: LogSink::stdout(),
            ready_timeout: Duration::from_secs(60),
            prometheus: Some(PrometheusOptions::default()),
        }
    }
}

/// The workspace root (where `sidecar.toml`, `Cargo.toml` and `ecs/prometheus/rules` are), in
/// this order:
/// 1. under cargo (`cargo run`, `cargo test`, nextest), the parent of the running crate's
///    `CARGO_MANIFEST_DIR`: the checkout cargo was asked to run, even when its target
///    directory is shared with another checkout;
/// 2. the checkout the running binary sits in (`<root>/target/<profile>/devstack`, or a test
///    binary under `deps/`), so a moved checkout or binaries copied into another one
///    (`scripts/run.sh --no-build`) read that checkout's files;
/// 3. the checkout this crate was built from (a `CARGO_TARGET_DIR` outside any checkout).
pub fn repo_root() -> PathBuf {
    let under_cargo = std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|dir| Path::new(&dir).parent().map(Path::to_path_buf))
        .filter(|dir| is_checkout(dir));
    under_cargo.or_else(|| std::env::current_exe().ok().and_then(|exe| checkout_above(&exe))).unwrap_or_else(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.parent().unwrap_or(manifest).to_path_buf()
    })
}

/// Whether `dir` holds this workspace's files.
fn is_checkout(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("sidecar.toml").is_file() && dir.join("ecs/prometheus/rules").is_dir()
}

/// The nearest of the four directories above `exe` that holds this workspace's files.
fn checkout_above(exe: &Path) -> Option<PathBuf> {
    exe.ancestors().skip(1).take(4).find(|dir| is_checkout(dir)).map(Path::to_path_buf)
}

/// 32 random bytes, hex: the run's JWT secret (the services refuse fewer than 32 bytes).
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The database of a run, as the banner names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `--data-dir`: a cluster kept in this directory, with PostgreSQL's durable defaults.
    DataDir(PathBuf),
    /// A temporary cluster tuned for speed (fsync off), removed on exit.
    Throwaway,
    /// `DATABASE_URL` / `--database-url`: a server this run does not manage.
    External,
}

impl Storage {
    /// One line for the banner and the log.
    pub fn describe(&self) -> String {
        match self {
            Storage::DataDir(dir) => {
                format!("durable: kept in {} with fsync, synchronous_commit and full_page_writes on", dir.display())
            }
            Storage::Throwaway => {
                "throwaway and fast: fsync off, removed on exit (use --data-dir to keep data safely)".to_owned()
            }
            Storage::External => "external: DATABASE_URL, durability as that server is configured".to_owned(),
        }
    }
}

/// A running child, for the run command's banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub name: String,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Its Prometheus endpoint (`/metrics`).
    pub metrics: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_is_found_above_the_binary_and_only_by_its_files() {
        let root = std::env::temp_dir().join(format!("devstack-checkout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("ecs/prometheus/rules")).unwrap();
        std::fs::create_dir_all(root.join("target/release/deps")).unwrap();
        for file in ["Cargo.toml", "sidecar.toml"] {
            std::fs::write(root.join(file), "").unwrap();
        }
        assert_eq!(checkout_above(&root.join("target/release/devstack")), Some(root.clone()));
        assert_eq!(checkout_above(&root.join("target/release/deps/devstack-0123")), Some(root.clone()));
        // Without the rules directory it is not this workspace.
        std::fs::remove_dir_all(root.join("ecs")).unwrap();
        assert_eq!(checkout_above(&root.join("target/release/devstack")), None);
        std::fs::remove_dir_all(&root).unwrap();
        // The test binary itself sits in this checkout.
        assert!(repo_root().join("ecs/prometheus/rules").is_dir());
    }
}
