//! moto_server (Secrets Manager) for the gateway tests: devstack's, with the tests' log dir.
#![allow(dead_code, clippy::unwrap_used)]

pub use devstack::moto::Moto;

use super::log_dir;

pub async fn start_moto() -> Moto {
    Moto::start(&log_dir()).await.unwrap_or_else(|e| panic!("{e:#}"))
}
