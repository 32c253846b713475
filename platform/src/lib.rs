//! Code shared by auth-svc, task-svc and the gateway.
//!
//! Kept small on purpose: the JWT keyring and claims (one definition of what a token is),
//! the JSON error body, typed environment config, telemetry, metrics, graceful shutdown and
//! the `healthcheck` probe used by ECS container health checks.

pub mod access_log;
pub mod config;
pub mod db;
pub mod error_body;
pub mod healthcheck;
pub mod http;
pub mod identity;
pub mod keyring;
pub mod metrics;
pub mod pool_metrics;
pub mod process_metrics;
pub mod revocation;
pub mod secret;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod timestamp;
pub mod trace_header;
pub mod tracing_otel;

pub use error_body::ErrorBody;
pub use secret::Secret;
