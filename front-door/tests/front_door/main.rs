//! The front door against stand-in targets: proxying (routing, round-robin, health-check
//! rotation, header handling, the JSON errors 404, 502, 503), and the requests it refuses
//! itself with the contract's JSON error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;
mod proxying;
mod refusals;
