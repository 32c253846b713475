//! The local front door (the `front-door` crate, the run command's ALB stand-in) as a process of its own (`bench front-door
//! ...`), so that its CPU and memory are measured like every other hop: `/tasks*` to the
//! gateway, `/auth*` to auth-svc.

use std::net::SocketAddr;

use ::front_door::{FrontDoor, FrontDoorConfig, PoolKind};
use anyhow::{Context, Result};

pub async fn serve(listen: SocketAddr, gateway: SocketAddr, auth: SocketAddr) -> Result<()> {
    let public = ::front_door::bind(listen.port(), "front door", "--listen").await?;
    let internal = ::front_door::bind(0, "front door (internal)", "-").await?;
    let targets = vec![("gateway".to_owned(), gateway, PoolKind::Tasks), ("auth-svc".to_owned(), auth, PoolKind::Auth)];
    // Its log lines (targets in and out of rotation, failed targets) as the services print theirs.
    let _tracing = platform::telemetry::init("front-door");
    let _door =
        FrontDoor::start(public, internal, targets, FrontDoorConfig::default()).context("starting the front door")?;
    std::future::pending::<()>().await;
    Ok(())
}
