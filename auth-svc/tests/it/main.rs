//! auth-svc's integration tests, one binary (one link) for all: the router in-process against
//! a fresh PostgreSQL database (`api`, `api_keys`, `oauth_token`, `revocation`, `throttle`), and the real binary as a
//! process (`flood`, `metrics`, `migration`, `process`). `harness` is what they share.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod api;
mod api_keys;
mod flood;
mod harness;
mod jwks;
mod metrics;
mod migration;
mod oauth_token;
mod process;
mod revocation;
mod signing_key;
mod throttle;
