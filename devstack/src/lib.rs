//! The local stack, shared by the run command and the tests so that what the tests start is
//! what a user runs.

pub mod build;
pub mod exposition;
pub mod forwarded;
pub mod front_door;
pub mod launch;
pub mod monitoring;
pub mod moto;
pub mod oneshot;
pub mod postgres;
pub mod process;
pub mod request_check;
pub mod stack;
pub mod upstream;
