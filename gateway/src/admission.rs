//! What an authenticated request must still pass before it is forwarded: its subject's rate
//! limit ([`crate::rate_limit`]), then its token's scope ([`crate::scope_check`]). Both answers
//! are written by the gateway; task-svc never sees such a request.

use std::sync::Arc;

use http::StatusCode;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use platform::ErrorBody;
use prometheus::Registry;

use crate::decision::Identity;
use crate::proxy::{Gateway, RequestCtx};
use crate::rate_limit::{RateLimitMetrics, RateLimitSettings, Subject, SubjectLimits};
use crate::scope_check::{self, ScopeMetrics};

/// The rate limits (`None` when `[rate_limit] enabled = false`) and the scope check's metrics.
pub struct Admission {
    pub limits: Option<Arc<SubjectLimits>>,
    scopes: ScopeMetrics,
}

/// The `reason` of a 429's body and the access log's.
pub use platform::error_body::reason::RATE_LIMITED;

impl Admission {
    /// Registers the metrics (the rate-limit ones even when limits are off, so dashboards and
    /// alerts see 0 rather than no series) and builds the limits of `settings`.
    pub fn new(settings: &RateLimitSettings, registry: &Registry) -> Result<Self> {
        let metrics = |e| Error::because(ErrorType::InternalError, "registering the admission metrics", e);
        let limit_metrics = RateLimitMetrics::register(registry).map_err(metrics)?;
        let scopes = ScopeMetrics::register(registry).map_err(metrics)?;
        let limits = settings.enabled.then(|| Arc::new(SubjectLimits::new(settings, limit_metrics)));
        Ok(Self { limits, scopes })
    }
}

impl Gateway {
    /// Answers 429 (subject over its rate) or 403 (token without the method's scope) and
    /// returns `true`, or returns `false`: forward the request.
    pub(crate) async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx, identity: &Identity) -> Result<bool> {
        if let Some(limits) = &self.admission.limits
            && let Err(limited) = limits.check(Subject::of(identity))
        {
            ctx.decision = ("limited", RATE_LIMITED);
            let body = ErrorBody::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests, retry later")
                .with_reason(RATE_LIMITED);
            self.respond(session, ctx, 429, body, &limited.headers(limits.policy())).await?;
            return Ok(true);
        }
        if let Some(scope) = scope_check::missing(identity, &session.req_header().method) {
            self.admission.scopes.denied(scope);
            ctx.decision = ("forbidden", scope_check::REASON);
            let message = format!("The token lacks the {} scope this request needs", scope.as_str());
            let body = ErrorBody::new(StatusCode::FORBIDDEN, message).with_reason(scope_check::REASON);
            self.respond(session, ctx, 403, body, &[("www-authenticate", scope_check::challenge(scope))]).await?;
            return Ok(true);
        }
        Ok(false)
    }
}
