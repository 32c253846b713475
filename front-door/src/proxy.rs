//! The two listeners' handlers: the ALB listener (its own checks, then the listener rules) and
//! the Cloud Map stand-in (every path to the auth pool), both forwarding one HTTP/1.1 hop with
//! streaming bodies. No retries: the ALB does not retry a request either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use platform::error_body::reason;

use crate::answer;
use crate::client_body::ClientBody;
use crate::door::Shared;
use crate::forwarded::{self, strip_hop_by_hop};
use crate::pool::PoolKind;
use crate::request_check::Peer;

/// The methods the load balancer forwards (the `Allow` of its own 405s).
const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// The message of every 404 of the ALB's listener rules, as the stack's fixed responses give it
/// (`ecs/cloudformation/task-management.yaml`, `MessageBody`): also for `/auth/validate`, which
/// is under `/auth` but internal.
const NO_ROUTE: &str = "No route for this path";

/// auth-svc's token validation for the gateways; not routed by the public listener.
pub const INTERNAL_PATH: &str = "/auth/validate";

/// `/auth/validate` and `/auth/validate/*`: the path patterns of the stack's `ValidateDenyRule`
/// (priority 5, ahead of the `/auth` rule), answered with the fixed 404.
fn is_internal(path: &str) -> bool {
    path.strip_prefix(INTERNAL_PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The ALB listener: its own checks first (request_check, TRACE, the internal
/// `/auth/validate`), then the listener rules.
pub(crate) async fn public_proxy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    if let Some(rejection) = peer.conn.take_rejection() {
        return answer::refusal(rejection, peer.addr);
    }
    let id = || answer::request_id(answer::client_request_id(req.headers()));
    if req.method() == Method::TRACE || req.method() == Method::CONNECT {
        // "Troubleshoot your Application Load Balancers", HTTP 405 (TRACE); the ALB does not
        // tunnel either. RFC 9110 section 15.5.6: a 405 carries `Allow`. CONNECT's bytes after
        // the head are not HTTP, so the connection is closed.
        let message = format!("The {} method is not supported", req.method());
        let (status, why) = (StatusCode::METHOD_NOT_ALLOWED, Some(reason::METHOD_NOT_ALLOWED));
        let mut resp = if req.method() == Method::CONNECT {
            answer::closing(status, message, why, id())
        } else {
            answer::error(status, message, why, id())
        };
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
        return resp;
    }
    let path = req.uri().path();
    // Internal: the gateways reach it through Cloud Map, never through the load balancer,
    // whose listener answers it with a fixed 404 like any path without a rule.
    if is_internal(path) {
        return answer::error(StatusCode::NOT_FOUND, NO_ROUTE, None, id());
    }
    let Some(kind) = PoolKind::route(path) else {
        return answer::error(StatusCode::NOT_FOUND, NO_ROUTE, None, id());
    };
    let listener_port = shared.public_port;
    forward(&shared, kind, Some((peer.addr, listener_port)), req).await
}

/// The Cloud Map stand-in: every path goes to the auth pool, and no `X-Forwarded-*` is added
/// because on ECS this hop is a DNS answer, not a proxy.
pub(crate) async fn internal_proxy(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    forward(&shared, PoolKind::Auth, None, req).await
}

/// Sends `req` to a healthy target of `kind`. `client` is the client's address and the public
/// listener's port (the ALB's headers); `None` on the Cloud Map stand-in.
async fn forward(shared: &Shared, kind: PoolKind, client: Option<(SocketAddr, u16)>, req: Request) -> Response {
    // For the front door's own answers only: a forwarded request's id is the target's business.
    let client_id = answer::client_request_id(req.headers());
    let Some(backend) = shared.pool(kind).pick() else {
        let message = format!("No healthy {} instance is available, retry later", kind.service());
        let id = answer::request_id(client_id);
        return answer::error(StatusCode::SERVICE_UNAVAILABLE, message, Some(reason::NO_HEALTHY_TARGET), id);
    };
    backend.requests.fetch_add(1, Ordering::Relaxed);

    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = match format!("http://{}{path_and_query}", backend.addr).parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => {
            let message = "The request target is not a valid URI";
            return answer::error(
                StatusCode::BAD_REQUEST,
                message,
                Some(reason::MALFORMED_REQUEST),
                answer::request_id(client_id),
            );
        }
    };
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if let Some((addr, port)) = client {
        forwarded::drop_invalid_names(&mut parts.headers);
        forwarded::add_forwarded(&mut parts.headers, addr, port);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        forwarded::add_trace_id(&mut parts.headers, now);
    }
    let body = ClientBody::new(body);
    let client_body_failed = body.failed.clone();
    let upstream = Request::from_parts(parts, Body::new(body));

    match tokio::time::timeout(shared.upstream_timeout, shared.client.request(upstream)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(_)) if client_body_failed.load(Ordering::Relaxed) => answer::closing(
            StatusCode::BAD_REQUEST,
            "The request body is malformed: its chunked encoding or length is not valid HTTP/1.1",
            Some(reason::MALFORMED_REQUEST),
            answer::request_id(client_id),
        ),
        Ok(Err(e)) => {
            tracing::warn!("{} ({}) failed: {e}", backend.name, backend.addr);
            let message = format!("The {} instance did not answer", kind.service());
            answer::error(
                StatusCode::BAD_GATEWAY,
                message,
                Some(reason::UPSTREAM_UNAVAILABLE),
                answer::request_id(client_id),
            )
        }
        Err(_) => {
            let message = format!("The {} instance did not answer in time", kind.service());
            answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                message,
                Some(reason::UPSTREAM_TIMEOUT),
                answer::request_id(client_id),
            )
        }
    }
}
