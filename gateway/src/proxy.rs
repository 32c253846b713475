//! The pingora `ProxyHttp`: decisions in `request_filter`, header rewriting in
//! `upstream_request_filter`, metrics and the access log in `logging`, and our own JSON error
//! responses in `fail_to_proxy` (pingora's default ones are empty-bodied).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, Result};
use platform::ErrorBody;
use platform::error_body::reason;
use platform::identity;
use platform::telemetry::JsonLines;
use tracing::Instrument as _;

use crate::access_log::{AccessLine, AccessSink};
use crate::admission::Admission;
use crate::authenticator::{Authenticator, credential};
use crate::config::Config;
use crate::decision::{Decision, Identity};
use crate::metrics::{Metrics, RequestMetrics, status_class};
use crate::request_id::{REQUEST_ID, RequestIds, request_id};
use crate::request_limits::{self, Refusal};
use crate::trace_context::RequestTrace;

/// Headers pingora needs for framing or routing; never removed even if `Connection` names them.
const KEEP: &[&str] = &["host", "content-length", "transfer-encoding"];

pub struct Gateway {
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub metrics: Metrics,
    /// The per-request counters, resolved once (see [`RequestMetrics`]).
    hot: RequestMetrics,
    /// task-svc as pingora's peer, built once with its timeouts; each request gets a copy.
    peer: HttpPeer,
    request_ids: RequestIds,
    /// Rate limits and scope checks after authentication (`admission.rs`).
    pub admission: Admission,
    /// Where the access line goes ([`AccessLine::write`]).
    access: AccessSink,
}

impl Gateway {
    /// The proxy for `config`. Fails when the upstream socket path is not a valid Unix socket
    /// address.
    pub fn new(config: Arc<Config>, auth: Arc<Authenticator>, metrics: Metrics, lines: JsonLines) -> Result<Self> {
        let peer = config.upstream.peer()?;
        let hot = RequestMetrics::new(&metrics);
        let admission = Admission::new(&config.rate_limit, metrics.registry())?;
        let access = AccessSink::new(lines);
        Ok(Self { config, auth, metrics, hot, peer, request_ids: RequestIds::new(), admission, access })
    }
}

/// Per-request state.
pub struct RequestCtx {
    start: Instant,
    request_id: HeaderValue,
    public: bool,
    identity: Option<Arc<Identity>>,
    pub(crate) decision: (&'static str, &'static str),
    /// Status of a response the gateway wrote itself (401, 503, 502, ...).
    responded: Option<u16>,
    upstream_status: Option<u16>,
    /// Request body bytes seen so far (`[server] max_body_bytes`).
    body_bytes: u64,
    /// The request's server span and the upstream call's client span.
    trace: RequestTrace,
}

/// Removes every client-sent identity header (any spelling, see
/// [`identity::is_identity_header`]) and hop-by-hop header, including those named in
/// `Connection`, in any case and any number of copies. The client's `Authorization` is not
/// forwarded either: task-svc trusts only the gateway's identity headers and has no use for the
/// token. Nor are the client's trace headers that the gateway does not replace
/// ([`crate::trace_context::is_dropped_trace_header`]); they are found with the others by
/// passing over the names ([`not_forwarded`]), which costs a request without them nothing more.
///
/// Runs on every forwarded request, so it allocates nothing unless the request carries a
/// header to strip (then one name is cloned per such header).
pub fn strip_untrusted(req: &mut RequestHeader) {
    // Headers named in `Connection` first, while `Connection` is still there to name them.
    let connection_lines = req.headers.get_all(header::CONNECTION).iter().count();
    for line in 0..connection_lines {
        // A HeaderValue clone shares its bytes; it frees `req` for the removals below.
        let Some(value) = req.headers.get_all(header::CONNECTION).iter().nth(line).cloned() else { break };
        for token in value.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            let Ok(name) = std::str::from_utf8(token) else { continue };
            // `Connection` itself goes with the hop-by-hop headers below; removing it here would
            // hide the names on its later lines.
            let skip = name.is_empty()
                || name.eq_ignore_ascii_case("connection")
                || KEEP.iter().any(|keep| keep.eq_ignore_ascii_case(name));
            if !skip {
                // Looked up by &str: parsed on the stack; a name that is not a token matches nothing.
                req.remove_header(name);
            }
        }
    }
    // The rest is found by passes over the names, one per name removed and a last one that
    // finds nothing (two for a request whose only such header is `Authorization`): a few
    // comparisons per header each, where a lookup per name that could be there hashes nine.
    loop {
        let Some(name) = req.headers.keys().find(|n| not_forwarded(n)).cloned() else { break };
        // Removes every value under the name.
        req.remove_header(&name);
    }
}

/// Whether a header named `name` is never forwarded to task-svc: hop-by-hop
/// ([`platform::http::is_hop_by_hop`]; `Transfer-Encoding` is left to pingora, which owns the
/// body framing), `Authorization`, an identity header in any spelling, or a client's trace
/// header the gateway does not replace.
fn not_forwarded(name: &HeaderName) -> bool {
    name == header::AUTHORIZATION
        || platform::http::is_hop_by_hop(name.as_str())
        || identity::is_identity_header(name.as_str())
        || crate::trace_context::is_dropped_trace_header(name)
}

impl Gateway {
    fn json_response(
        status: u16,
        body: ErrorBody,
        ctx: &RequestCtx,
        extra: &[(&'static str, String)],
    ) -> Result<(ResponseHeader, Bytes)> {
        let body = Bytes::from(body.to_json_bytes());
        let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
        resp.insert_header(header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(REQUEST_ID, ctx.request_id.clone())?;
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        for (name, value) in extra {
            resp.insert_header(*name, value.as_str())?;
        }
        Ok((resp, body))
    }

    pub(crate) async fn respond(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        body: ErrorBody,
        extra: &[(&'static str, String)],
    ) -> Result<()> {
        let (resp, body) = Self::json_response(status, body, ctx, extra)?;
        ctx.responded = Some(status);
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }

    /// Answers a request over a limit and closes the connection (an unread body is not drained).
    /// The access line's decision becomes `refused` with the limit's reason, also after a token
    /// was allowed (a body over `max_body_bytes`), as a 429 after it reads `limited`.
    async fn refuse(&self, session: &mut Session, ctx: &mut RequestCtx, refusal: Refusal) -> Result<()> {
        ctx.decision = ("refused", refusal.reason);
        session.set_keepalive(None);
        let body = ErrorBody::new(refusal.status, refusal.message).with_reason(refusal.reason);
        self.respond(session, ctx, refusal.status.as_u16(), body, &[]).await
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            start: Instant::now(),
            request_id: HeaderValue::from_static("-"),
            public: false,
            identity: None,
            decision: ("none", "none"),
            responded: None,
            upstream_status: None,
            body_bytes: 0,
            trace: RequestTrace::default(),
        }
    }

    /// Sets how long this connection may sit idle after the response: `server.keepalive_timeout_secs`.
    /// pingora 0.9.1 gives a new connection 60 s for its first request, then waits without limit
    /// between HTTP/1.1 requests (parsing a request resets the timeout to "infinite"), so it is
    /// set again on every request. A client's `Connection: close` and pingora's shutdown (both
    /// turn keep-alive off) are left alone.
    ///
    /// Also turns on pingora's HTTP/1.1 pipelining for the connection: without it, bytes of a
    /// next request that arrive with this one close the connection after this response and the
    /// next request is never answered. With it they are served in order (RFC 9112 section 9.3.2).
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> Result<()> {
        session.as_downstream_mut().set_pipelining_enabled(true);
        // A client that closes its sending side after a whole request still reads the answer
        // (RFC 9112 section 9.6): forward it, as HAProxy does without `option abortonclose`.
        // A client that is gone fails the answer's write instead.
        session.as_downstream_mut().set_abort_on_close(false);
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.config.server.keepalive_timeout_secs));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = request_id(&req.headers, &self.request_ids);
        ctx.trace.start(platform::tracing_otel::request_sampling(), req, &ctx.request_id);
        if let Some(refusal) = self.config.server.limits.check_head(req).or_else(|| request_limits::check_framing(req))
        {
            self.refuse(session, ctx, refusal).await?;
            return Ok(true);
        }
        ctx.public = self.config.routes.is_public(req.uri.path());
        if ctx.public {
            ctx.decision = ("public", "public");
            self.hot.decision_public.inc();
            return Ok(false);
        }
        // At most two values matter (two or more is `malformed`): no allocation.
        let mut values = req.headers.get_all(header::AUTHORIZATION).iter().map(HeaderValue::as_bytes);
        let found = match (values.next(), values.next()) {
            (None, _) => credential(&[]),
            (Some(one), None) => credential(&[one]),
            (Some(one), Some(two)) => credential(&[one, two]),
        };
        let decision = match found {
            Err(r) => Decision::Deny(r),
            // Inside the server span only when there is one: wrapping the future costs a copy
            // of it per request.
            Ok(token) if ctx.trace.server.is_none() => self.auth.authenticate(token, ctx.trace.ids()).await,
            Ok(token) => {
                let server = ctx.trace.server.clone();
                self.auth.authenticate(token, ctx.trace.ids()).instrument(server).await
            }
        };
        ctx.decision = decision.labels();
        match &decision {
            Decision::Allow(_) => self.hot.decision_allow.inc(),
            _ => self.metrics.decisions.with_label_values(&[ctx.decision.0, ctx.decision.1]).inc(),
        }
        match decision {
            Decision::Allow(id) => {
                // Set before admission: a 429's or 403's access line names its user too.
                ctx.identity = Some(id.clone());
                self.admit(session, ctx, &id).await
            }
            Decision::Deny(r) => {
                let body = ErrorBody::new(StatusCode::UNAUTHORIZED, r.to_string()).with_reason(r.reason());
                self.respond(session, ctx, 401, body, &[("www-authenticate", "Bearer".to_owned())]).await?;
                Ok(true)
            }
            Decision::Unavailable(u) => {
                let retry = self.config.auth.retry_after_secs.to_string();
                let body = ErrorBody::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Authentication is temporarily unavailable, retry later",
                )
                .with_reason(u.reason());
                self.respond(session, ctx, 503, body, &[("retry-after", retry)]).await?;
                Ok(true)
            }
        }
    }

    /// A body announced over `max_body_bytes` is refused here, after authentication, so a
    /// request without a valid token still gets its 401 whatever its size.
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        match self.config.server.limits.check_body_length(session.req_header()) {
            None => Ok(true),
            Some(refusal) => self.refuse(session, ctx, refusal).await.map(|()| false),
        }
    }

    /// Counts a body that announced no length (chunked) against `max_body_bytes`; an announced
    /// one was checked in `request_filter`. Over the limit: 413 through `fail_to_proxy`.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > self.config.server.limits.max_body_bytes {
            ctx.decision = ("refused", platform::error_body::reason::BODY_TOO_LARGE);
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body_bytes");
        }
        Ok(())
    }

    /// A request pingora refused before any phase (see `request_limits::for_parse_error`, and
    /// CONNECT): the contract's JSON instead of pingora's empty 400 or 405.
    async fn request_error_filter(&self, session: &mut ServerSession, e: &Error) -> bool {
        let refusal = match e.etype() {
            ErrorType::HTTPStatus(405) => Refusal::CONNECT,
            _ => request_limits::for_parse_error(e),
        };
        let mut ctx = self.new_ctx();
        ctx.request_id = self.request_ids.next();
        let body = ErrorBody::new(refusal.status, refusal.message).with_reason(refusal.reason);
        let status = refusal.status.as_u16();
        let Ok((resp, body)) = Self::json_response(status, body, &ctx, &[]) else { return false };
        self.hot.count(false, status, ctx.start.elapsed().as_secs_f64());
        // The error's context quotes the request's bytes (tokens too): only its type is logged.
        tracing::info!(
            target: "access",
            status,
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            reason = refusal.reason,
            error = e.etype().as_str(),
            "request refused before parsing"
        );
        if let Err(err) = session.write_error_response(resp, body).await {
            tracing::debug!(error = %err, "could not write the error response");
        }
        true
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        strip_untrusted(upstream);
        if let Some(id) = &ctx.identity {
            upstream.insert_header(identity::USER_ID, id.user_id_header.clone())?;
        }
        upstream.insert_header(REQUEST_ID, ctx.request_id.clone())?;
        ctx.trace.upstream(upstream)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if status >= 200 {
            ctx.upstream_status = Some(status);
            ctx.trace.upstream_status(status);
            if (200..300).contains(&status) {
                self.hot.upstream_2xx.inc();
            } else {
                self.metrics.upstream_responses.with_label_values(&[status_class(status)]).inc();
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        resp.insert_header(REQUEST_ID, ctx.request_id.clone())?;
        Ok(())
    }

    /// pingora logs every failed request at ERROR, with the error's context (which can quote
    /// the client's bytes). A client's fault (bad framing, a reset, a timeout reading it) is not
    /// the operator's, nor is a limit it broke (our own 4xx): its access line has the status and
    /// the error's type. Upstream and internal failures keep pingora's line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, error: &Error) -> bool {
        *error.esource() == ErrorSource::Downstream || matches!(error.etype(), ErrorType::HTTPStatus(400..=499))
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Self::CTX) -> FailToProxy {
        let refusal = |r: Refusal| (r.status.as_u16(), Some(r.message), Some(r.reason));
        let (code, message, reason) = match (e.esource(), e.etype()) {
            (_, ErrorType::HTTPStatus(413)) => refusal(Refusal::BODY_TOO_LARGE),
            // The client's bytes broke HTTP/1.1 while its body was read (a bad chunk size).
            (ErrorSource::Downstream, ErrorType::HTTPStatus(400)) => refusal(Refusal::MALFORMED),
            (_, ErrorType::HTTPStatus(c)) => (*c, None, None),
            // The body reader's error for a client that closed before its body's end; with
            // `abort_on_close` off the gateway sees no other close while it proxies. A client
            // that only half-closed reads this answer; one that is gone fails its write.
            (ErrorSource::Downstream, ErrorType::ConnectionClosed) => refusal(Refusal::INCOMPLETE_BODY),
            (ErrorSource::Downstream, ErrorType::WriteError | ErrorType::ReadError) => (0, None, None),
            (ErrorSource::Downstream, ErrorType::ReadTimedout) => (408, None, None),
            (ErrorSource::Downstream, _) => refusal(Refusal::MALFORMED),
            (_, ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
                (504, Some("The upstream service did not answer in time"), Some(reason::UPSTREAM_TIMEOUT))
            }
            (ErrorSource::Upstream, _)
            | (_, ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError) => {
                (502, Some("The upstream service is unavailable"), Some(reason::UPSTREAM_UNAVAILABLE))
            }
            _ => (500, None, None),
        };
        if code > 0 && session.response_written().is_none() {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = message.unwrap_or_else(|| ErrorBody::default_message(status));
            let extra: Vec<(&'static str, String)> =
                if code == 503 { vec![("retry-after", self.config.auth.retry_after_secs.to_string())] } else { vec![] };
            let mut body = ErrorBody::new(status, message);
            if let Some(reason) = reason {
                body = body.with_reason(reason);
            }
            match Self::json_response(code, body, ctx, &extra) {
                Ok((resp, body)) => {
                    ctx.responded = Some(code);
                    if let Err(err) = session.as_downstream_mut().write_error_response(resp, body).await {
                        tracing::debug!(error = %err, "could not write the error response");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not build the error response"),
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map(|r| r.status.as_u16()).or(ctx.responded).unwrap_or(0);
        let elapsed = ctx.start.elapsed();
        self.hot.count(ctx.public, status, elapsed.as_secs_f64());
        let req = session.req_header();
        ctx.trace.finish(status);
        if !self.config.access_log.logs(status, e.is_some(), elapsed, ctx.trace.trace_id(), ctx.trace.sampled()) {
            return;
        }
        let trace_id = platform::trace_header::TraceIdHex::new(ctx.trace.trace_id());
        let path = platform::access_log::path_for_log(req.uri.path());
        AccessLine {
            timestamp: std::time::SystemTime::now(),
            level: "INFO",
            message: "request",
            method: req.method.as_str(),
            path: &path,
            status,
            upstream_status: ctx.upstream_status.unwrap_or(0),
            duration_ms: AccessLine::millis(elapsed),
            request_id: ctx.request_id.to_str().unwrap_or("-"),
            trace_id: trace_id.as_str(),
            decision: ctx.decision.0,
            reason: ctx.decision.1,
            user_id: ctx.identity.as_ref().map_or(0, |i| i.user_id),
            error: e.map(|e| e.etype().as_str()).unwrap_or(""),
        }
        .write(&self.access);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_identity_and_hop_by_hop_headers_in_any_case_and_count() {
        let mut req = RequestHeader::build("GET", b"/tasks", None).unwrap();
        req.append_header("X-User-Id", "1").unwrap();
        req.append_header("x-user-id", "2").unwrap();
        req.append_header("X-USER-EMAIL", "e@x.io").unwrap();
        req.append_header("X-Authenticated-User", "root").unwrap();
        req.append_header("X_User_Id", "3").unwrap();
        req.append_header("x_USER-id", "4").unwrap();
        req.append_header("X-Authenticated_User", "root").unwrap();
        req.append_header("Remote_User", "root").unwrap();
        req.append_header("Connection", "keep-alive, X-Custom-Hop").unwrap();
        req.append_header("Connection", "Connection").unwrap();
        req.append_header("Connection", "x_other_hop").unwrap();
        req.append_header("X_Other_Hop", "v").unwrap();
        req.append_header("X-Custom-Hop", "v").unwrap();
        req.append_header("Keep-Alive", "timeout=5").unwrap();
        req.append_header("Upgrade", "websocket").unwrap();
        req.append_header("TE", "trailers").unwrap();
        req.append_header("Authorization", "Bearer x").unwrap();
        req.append_header("X-Amzn-Trace-Id", "Root=1-abc").unwrap();
        req.append_header("tracestate", "a=1").unwrap();
        req.append_header("TraceState", "b=2").unwrap();
        // Replaced later by RequestTrace::upstream, not removed here.
        req.append_header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        req.append_header("Content-Type", "application/json").unwrap();
        strip_untrusted(&mut req);
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["content-type", "traceparent"], "{left:?}");
    }

    #[test]
    fn connection_cannot_remove_framing_headers() {
        let mut req = RequestHeader::build("POST", b"/tasks", None).unwrap();
        req.append_header("Connection", "content-length, host").unwrap();
        req.append_header("Content-Length", "2").unwrap();
        req.append_header("Host", "x").unwrap();
        strip_untrusted(&mut req);
        assert!(req.headers.get("content-length").is_some());
        assert!(req.headers.get("host").is_some());
    }

    #[test]
    fn connection_tokens_that_are_empty_odd_or_long_are_handled() {
        let long = format!("x-{}", "l".repeat(100));
        let mut req = RequestHeader::build("GET", b"/tasks", None).unwrap();
        req.append_header("Connection", format!(" , ,,not a token, \u{e9}, {}", long.to_uppercase())).unwrap();
        req.append_header(long.clone(), "v").unwrap();
        req.append_header("X-Kept", "v").unwrap();
        strip_untrusted(&mut req);
        let left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-kept"]);
    }
}
