//! The end-to-end tests, one binary (one link) for all: the whole stack started with the run
//! command's own code (`devstack::stack`) and driven over HTTP, one module per behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod alb_behaviour;
mod api_keys;
mod balancing;
mod durability;
mod failover;
mod phase8;
mod prometheus;
mod revocation;
mod rotation;
mod signing;
mod sigterm;
mod startup_errors;
mod traces;
