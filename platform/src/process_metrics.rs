//! What every binary exposes about itself: the `prometheus` crate's process collector
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_threads`, `process_start_time_seconds`, read
//! from `/proc/self` at scrape time; Linux only) and a `taskmgmt_build_info{service,version} 1`
//! gauge, the Prometheus convention for build metadata (join on it to see which version a
//! target runs).

use prometheus::process_collector::ProcessCollector;
use prometheus::{IntGaugeVec, Opts, Registry};

/// Name of the build-info gauge shared by auth-svc, task-svc and the gateway.
pub const BUILD_INFO: &str = "taskmgmt_build_info";

/// Registers the process collector and `taskmgmt_build_info{service, version}` (value 1) in
/// `registry`. `service` is the binary's name (`auth-svc`, `task-svc`, `gateway`); `version` is
/// the crate version the binary was built from.
///
/// Errors: `prometheus::Error::AlreadyReg` when called twice on one registry.
pub fn register(registry: &Registry, service: &str, version: &str) -> prometheus::Result<()> {
    registry.register(Box::new(ProcessCollector::for_self()))?;
    let info = IntGaugeVec::new(
        Opts::new(BUILD_INFO, "Build of the running binary (always 1): service and version labels"),
        &["service", "version"],
    )?;
    info.with_label_values(&[service, version]).set(1);
    registry.register(Box::new(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_process_metrics_render() {
        let registry = Registry::new();
        register(&registry, "auth-svc", "1.2.3").unwrap();
        let text = crate::metrics::render(&registry);
        assert!(text.contains(r#"taskmgmt_build_info{service="auth-svc",version="1.2.3"} 1"#), "{text}");
        for name in
            ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_max_fds"]
        {
            assert!(text.contains(&format!("\n{name} ")), "{name} missing:\n{text}");
        }
        assert!(register(&registry, "auth-svc", "1.2.3").is_err(), "a second registration is refused");
    }
}
