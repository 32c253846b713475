//! The local stack, shared by the run command and the end-to-end tests so that what the tests
//! start is what a user runs: the launcher of the system's binaries ([`launch`], [`process`]),
//! the PostgreSQL cluster ([`postgres`]), the stack itself ([`stack`]) with its front door (the
//! `front-door` crate) and Prometheus ([`monitoring`]), the run command's output ([`logs`]), and
//! the one-build rule ([`build`]). Test fixtures are in the `testkit` crate.

pub mod build;
pub mod launch;
pub mod logs;
pub mod monitoring;
pub mod postgres;
pub mod process;
pub mod stack;
