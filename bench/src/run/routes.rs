//! The ways into the system a run measures, and which workloads visit each.

use crate::options::Options;
use crate::stack::BenchStack;

/// A way into the system.
pub struct Route {
    pub name: &'static str,
    pub url: String,
    /// bearer: the client's token; identity: X-User-Id straight into task-svc.
    pub mode: &'static str,
    /// The processes this path adds in front of task-svc (their CPU and memory are the cost).
    pub edges: &'static [&'static str],
    /// The workloads that visit this path.
    pub workloads: &'static [&'static str],
}

/// Every task workload but the VPC one.
const ALL: &[&str] = &["health", "get", "get-paced", "list", "put", "post"];
/// The VPC workload alone.
const VPC_ONLY: &[&str] = &["get-vpc"];
/// The task workloads, in run order (POST last: it grows the users' lists, which GET /tasks
/// reads).
pub const TASK_WORKLOADS: [&str; 7] = ["health", "get", "get-paced", "get-vpc", "list", "put", "post"];

fn bearer(name: &'static str, url: String, edge: &'static [&'static str], workloads: &'static [&'static str]) -> Route {
    Route { name, url, mode: "bearer", edges: edge, workloads }
}

/// The routes `o --paths` asks for, in visiting order.
pub fn routes(o: &Options, stack: &BenchStack) -> Vec<Route> {
    let mut routes = vec![
        Route { name: "direct", url: stack.task.url(), mode: "identity", edges: &[], workloads: ALL },
        bearer("gateway", stack.gateway.url(), &["gateway"], ALL),
        bearer("gateway-uds", stack.gateway_uds.url(), &["gateway-uds"], &["get"]),
        bearer("gateway-nocache", stack.gateway_nocache.url(), &["gateway-nocache"], &["get"]),
    ];
    if let Some(before) = &stack.gateway_before {
        routes.push(bearer("gateway-before", before.url(), &["gateway-before"], &["health", "get", "put", "post"]));
    }
    for (name, gateway) in &stack.variants {
        let edges: &'static [&'static str] = Box::leak(Box::new([*name]));
        routes.push(bearer(name, gateway.url(), edges, &["health", "get", "put", "post"]));
    }
    let door_url = o.front_door.as_ref().map_or_else(|| stack.front_door.url(), |u| u.trim_end_matches('/').to_owned());
    routes.extend([
        bearer("gateway-revoked", stack.revoked.gateway.url(), &["gateway-revoked"], &["get"]),
        Route {
            name: "haproxy",
            url: stack.haproxy.url(),
            mode: "identity",
            edges: &["haproxy"],
            workloads: &["health", "get"],
        },
        bearer("haproxy-jwt", stack.haproxy_jwt.url(), &["haproxy-jwt"], ALL),
        bearer("haproxy-jwt-log", stack.haproxy_jwt_log.url(), &["haproxy-jwt-log"], ALL),
        bearer("validate", stack.validate_proxy.url(), &["validate-proxy"], ALL),
        // Client -> front door (ALB stand-in) -> gateway -> task-svc, as on ECS.
        bearer("front-door", door_url, &["front-door", "gateway"], &["get", "get-paced"]),
    ]);
    // The VPC cell: the same paths, PostgreSQL and (for validate) auth-svc behind relays.
    let vpc = &stack.vpc;
    routes.extend([
        Route { name: "direct", url: vpc.task.url(), mode: "identity", edges: &[], workloads: VPC_ONLY },
        bearer("gateway", vpc.gateway.url(), &["gateway-vpc"], VPC_ONLY),
        bearer("haproxy-jwt", vpc.haproxy_jwt.url(), &["haproxy-jwt-vpc"], VPC_ONLY),
        bearer("validate", vpc.validate_proxy.url(), &["validate-vpc"], VPC_ONLY),
    ]);
    routes.retain(|r| o.wants_path(r.name));
    routes
}
