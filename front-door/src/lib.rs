//! The local stand-in for the ALB (and, on a second port, for Cloud Map's health-checked
//! `auth-service` records): path routing to target pools, round-robin over healthy targets,
//! active health checks, and JSON errors when no target can answer.
//!
//! It is deliberately small: one HTTP/1.1 hop with streaming bodies, hop-by-hop headers
//! removed and `X-Forwarded-*` added, as the ALB does. No retries: the ALB does not retry a
//! request either, so what clients see locally during a failure is what they see on AWS.
//!
//! - [`door`]: the running front door, its listeners and stopping;
//! - [`pool`]: the listener rules, targets and round-robin; `health`: the active checks;
//! - [`proxy`]: the handlers that answer or forward a request; [`answer`]: the JSON errors of
//!   the front door's own answers;
//! - [`request_check`]: the ALB's own checks of a request head, before hyper reads it;
//! - [`forwarded`]: the headers the ALB adds and removes;
//! - [`upstream`], [`client_body`]: the connections to targets and the client's body on its way.
//!
//! Logs are `tracing` events (target `front_door`): the run command prints them with the
//! prefix `front-door`.

pub mod answer;
pub mod client_body;
pub mod config;
pub mod door;
pub mod forwarded;
mod health;
pub mod pool;
pub mod proxy;
pub mod request_check;
pub mod upstream;

pub use config::{FrontDoorConfig, HealthCheck};
pub use door::{FrontDoor, bind};
pub use pool::{BackendStatus, PoolKind};
