//! [`Stack::shutdown`]: the stack stopped in order, the way a user's Ctrl-C does.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Stack;
use crate::logs::LogSink;
use crate::process::Process;

impl Stack {
    /// Stops everything in order, as ECS and the ALB would: Prometheus (the observer first),
    /// then the front door stops taking requests and drains, then the gateways (SIGTERM, their
    /// configured grace), then the Cloud Map stand-in, then the services, then PostgreSQL;
    /// finally the temporary directory goes. Returns an error naming whatever had to be killed.
    pub async fn shutdown(mut self) -> Result<()> {
        let logs = self.logs.clone();
        let start = Instant::now();
        let mut problems = Vec::new();
        if let Some(prometheus) = self.prometheus.as_mut().and_then(|p| p.process.take()) {
            logs.line("devstack", "stopping Prometheus (SIGTERM)");
            problems.extend(stop_all(vec![prometheus], Duration::from_secs(10), &logs).await);
        }
        logs.line("devstack", "stopping the front door (draining in-flight requests)");
        self.front_door.stop_public().await;

        let gateways: Vec<Process> = self.tasks.iter_mut().filter_map(|t| t.gateway.process.take()).collect();
        if !gateways.is_empty() {
            // pingora sleeps through its whole grace period even when idle: say so, or the
            // pause looks like a hang.
            logs.line(
                "devstack",
                &format!(
                    "stopping the gateways (SIGTERM; pingora waits its full {} s grace period, \
                     sidecar.toml [shutdown] or --gateway-grace)",
                    self.gateway_grace_secs
                ),
            );
        }
        problems.extend(stop_all(gateways, self.gateway_stop_wait, &logs).await);
        self.front_door.stop_internal().await;

        let services: Vec<Process> = self
            .auth
            .iter_mut()
            .chain(self.tasks.iter_mut().map(|t| &mut t.svc))
            .filter_map(|c| c.process.take())
            .collect();
        logs.line("devstack", "stopping auth-svc and task-svc (SIGTERM)");
        problems.extend(stop_all(services, self.service_stop_wait, &logs).await);

        if let Some(cluster) = self.database.take() {
            logs.line("devstack", "stopping PostgreSQL");
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("PostgreSQL: {e:#}")),
                Err(e) => problems.push(format!("PostgreSQL: {e}")),
            }
        }
        if self.run_dir.remove {
            logs.line("devstack", &format!("removing {}", self.run_dir.path.display()));
        } else {
            logs.line("devstack", &format!("kept {}", self.run_dir.path.display()));
        }
        logs.line("devstack", &format!("stopped in {:.1} s", start.elapsed().as_secs_f64()));
        drop(self);
        if problems.is_empty() { Ok(()) } else { bail!("{}", problems.join("; ")) }
    }
}

/// SIGTERM to all at once, then waits for each (SIGKILL after `wait`); returns what went wrong.
async fn stop_all(processes: Vec<Process>, wait: Duration, logs: &LogSink) -> Vec<String> {
    let handles: Vec<_> = processes
        .into_iter()
        .map(|mut p| {
            // SIGTERM to all of them before waiting for any, so they drain in parallel.
            let sent = p.terminate();
            tokio::task::spawn_blocking(move || {
                let result = match sent {
                    // `kill` fails only if the process is already gone.
                    Err(_) => Ok(p.try_status()),
                    Ok(()) => p.wait_timeout(wait).inspect(|status| {
                        if status.is_none() {
                            p.kill();
                        }
                    }),
                };
                (p.name.clone(), result)
            })
        })
        .collect();
    let mut problems = Vec::new();
    for h in handles {
        match h.await {
            Ok((name, Ok(Some(status)))) => {
                logs.line("devstack", &format!("{name} exited ({status})"));
                // 143 = killed by our SIGTERM before it installed its handler: still stopped.
                if !status.success() && status.code() != Some(143) {
                    problems.push(format!("{name} exited with {status}"));
                }
            }
            Ok((name, Ok(None))) => problems.push(format!("{name} did not stop within {wait:?} and was killed")),
            Ok((name, Err(e))) => problems.push(format!("{name}: {e:#}")),
            Err(e) => problems.push(format!("stop task: {e}")),
        }
    }
    problems
}
