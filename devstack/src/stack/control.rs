//! What a test or the run command does to a running stack: kill and restart processes, wait for
//! the front door's view of a target, collect children that exited.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Stack;
use crate::process::Process;

impl Stack {
    /// Kills auth-svc instance `i` (SIGKILL, like a crashed task).
    pub fn kill_auth(&mut self, i: usize) {
        self.logs.line("devstack", &format!("killing {}", self.auth[i].name()));
        self.auth[i].kill();
    }

    /// Starts auth-svc instance `i` again on the same ports and waits until it answers.
    pub async fn restart_auth(&mut self, i: usize) -> Result<()> {
        let child = &mut self.auth[i];
        child.kill();
        child.spawn(&self.logs)?;
        child.wait_ready(Duration::from_secs(60)).await
    }

    /// Kills task `i`'s task-svc; its gateway keeps running (and answers 502 for it).
    pub fn kill_task_svc(&mut self, i: usize) {
        self.logs.line("devstack", &format!("killing {}", self.tasks[i].svc.name()));
        self.tasks[i].svc.kill();
    }

    /// Starts task `i`'s task-svc again on the same ports and waits until it answers.
    pub async fn restart_task_svc(&mut self, i: usize) -> Result<()> {
        let child = &mut self.tasks[i].svc;
        child.kill();
        child.spawn(&self.logs)?;
        child.wait_ready(Duration::from_secs(60)).await
    }

    /// Waits until the front door sees target `name` (e.g. `task-1`) as `healthy`.
    pub async fn wait_for_target(&self, name: &str, healthy: bool, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let Some(b) = self.backends().into_iter().find(|b| b.name == name) else {
                bail!("no front door target named {name}");
            };
            if b.healthy == healthy {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{name} is not {} after {timeout:?}", if healthy { "healthy" } else { "unhealthy" });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Children that have exited since the last call (for the run command to report).
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        let mut out = Vec::new();
        let children = self.auth.iter_mut().chain(self.tasks.iter_mut().flat_map(|t| [&mut t.svc, &mut t.gateway]));
        for c in children.chain(self.prometheus.as_mut()) {
            if let Some(status) = c.process.as_mut().and_then(Process::try_status) {
                out.push((c.name().to_owned(), status));
                c.process = None;
            }
        }
        out
    }
}
