//! The gateway's integration tests, one binary (one link) for all: the real auth-svc, task-svc
//! and gateway binaries on loopback (testkit's gateway harness), one module per behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod access_log;
mod admission;
mod asymmetric;
mod config;
mod fallback;
mod forwarding;
mod half_close;
mod keepalive;
mod metrics;
mod pipelining_and_limits;
mod raw_http;
mod request_bodies;
mod response_bodies;
mod revocation;
mod rotation;
mod secrets_manager;
mod shutdown;
mod unix_socket;
mod upstream_errors;
