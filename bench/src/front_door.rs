//! The local front door (devstack's ALB stand-in) as a process of its own (`bench front-door
//! ...`), so that its CPU and memory are measured like every other hop: `/tasks*` to the
//! gateway, `/auth*` to auth-svc.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use devstack::front_door::{self, FrontDoor, FrontDoorConfig, PoolKind};
use devstack::process::LogSink;

pub async fn serve(listen: SocketAddr, gateway: SocketAddr, auth: SocketAddr) -> Result<()> {
    let public = front_door::bind(listen.port(), "front door", "--listen").await?;
    let internal = front_door::bind(0, "front door (internal)", "-").await?;
    let targets = vec![("gateway".to_owned(), gateway, PoolKind::Tasks), ("auth-svc".to_owned(), auth, PoolKind::Auth)];
    let logs = LogSink::new(Box::new(std::io::stderr()));
    let _door = FrontDoor::start(public, internal, targets, FrontDoorConfig::default(), logs)
        .context("starting the front door")?;
    std::future::pending::<()>().await;
    Ok(())
}
