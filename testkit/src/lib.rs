//! What the tests of every crate share, in one dev-only crate (services take it as a
//! dev-dependency; no production crate depends on it):
//!
//! - [`api`]: one HTTP client ([`api::client`]), requests to an in-process router or a server
//!   over HTTP through one trait ([`api::Api`]), and one [`reply::Reply`] for both;
//! - [`accounts`]: test users (register, log in) and tokens minted with a secret;
//! - [`database`]: the shared test PostgreSQL server, a fresh database per test, and waiting for
//!   a statement blocked on a lock;
//! - [`exposition`]: strict parsing of a Prometheus `/metrics` page, and `promtool`;
//! - [`moto`]: Secrets Manager on moto_server;
//! - [`harness`]: the gateway tests' processes (auth-svc, task-svc, gateway) and their
//!   `sidecar.toml` as edits over one test default;
//! - [`wait`]: poll a condition until it holds or a deadline passes (never sleep, then assert).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation stops the test with its message

pub mod accounts;
pub mod api;
pub mod database;
pub mod exposition;
pub mod harness;
pub mod moto;
pub mod otlp;
pub mod reply;
pub mod wait;

pub use api::{Api, Http, client};
pub use database::TestDatabase;
pub use reply::Reply;

/// The launcher of the system's binaries (devstack's), for tests that start processes.
pub use devstack::launch;
/// PostgreSQL clusters (devstack's), for tests that stop and restart their own.
pub use devstack::postgres;
/// A free loopback port.
pub use devstack::postgres::free_port;
/// Child processes (devstack's).
pub use devstack::process;
