//! task-svc's integration tests, one binary (one link) for all: the router in-process against
//! a fresh PostgreSQL database (`api`, `contract_edges`, through `harness`), and the real binary
//! as a process (`metrics`, `process`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod api;
mod contract_edges;
mod harness;
mod metrics;
mod process;
