//! Scope enforcement on the protected routes (`/tasks`, `/tasks/*`): a request's method needs
//! [`Scope::for_method`], and a token without it is answered 403 `insufficient_scope` (RFC 6750
//! §3.1) without reaching task-svc. A token without a `scope` claim (a login token issued before
//! scopes existed) holds every scope (see [`platform::keyring::scope::ScopeSet::from_claim`]).

use http::Method;
use platform::keyring::scope::Scope;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::decision::Identity;

/// The scope `identity` lacks for `method`, if any.
pub fn missing(identity: &Identity, method: &Method) -> Option<Scope> {
    let needed = Scope::for_method(method);
    (!identity.scopes.contains(needed)).then_some(needed)
}

/// The `WWW-Authenticate` value of a 403 for `scope` (RFC 6750 §3: the `error` and the `scope`
/// the request needs, both quoted strings).
pub fn challenge(scope: Scope) -> String {
    format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", scope.as_str())
}

/// The reason in the 403's body and in the access log.
pub const REASON: &str = "insufficient_scope";

/// `gateway_scope_denials_total{scope}`: requests refused for lacking `scope`, each series at 0
/// from the start.
#[derive(Clone)]
pub struct ScopeMetrics {
    /// One counter per [`Scope::ALL`] entry, in that order.
    denials: Vec<IntCounter>,
}

impl ScopeMetrics {
    /// Registers the family. Errors: its name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let family = IntCounterVec::new(
            Opts::new(
                "gateway_scope_denials_total",
                "Requests answered 403 because the token lacks the scope their method needs",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(family.clone()))?;
        Ok(Self { denials: Scope::ALL.iter().map(|s| family.with_label_values(&[s.as_str()])).collect() })
    }

    pub fn denied(&self, scope: Scope) {
        if let Some(c) = Scope::ALL.iter().position(|s| *s == scope).and_then(|i| self.denials.get(i)) {
            c.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use platform::keyring::Claims;

    use super::*;

    fn identity(scope: Option<&str>) -> Identity {
        let mut claims = Claims::new(7, "alice", "a@example.com", 0, 60);
        claims.scope = scope.map(str::to_owned);
        Identity::from_claims(&claims, None).unwrap()
    }

    #[test]
    fn each_method_needs_its_scope() {
        let read_only = identity(Some("tasks:read"));
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(missing(&read_only, &m), None, "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::from_bytes(b"PURGE").unwrap()] {
            assert_eq!(missing(&read_only, &m), Some(Scope::TasksWrite), "{m}");
        }
        let write_only = identity(Some("tasks:write"));
        assert_eq!(missing(&write_only, &Method::GET), Some(Scope::TasksRead));
        assert_eq!(missing(&write_only, &Method::DELETE), None);
        let none = identity(Some(""));
        assert_eq!(missing(&none, &Method::GET), Some(Scope::TasksRead));
        let legacy = identity(None);
        for m in [Method::GET, Method::POST, Method::DELETE] {
            assert_eq!(missing(&legacy, &m), None, "a token without a scope claim holds every scope");
        }
    }

    #[test]
    fn the_challenge_names_the_error_and_the_scope() {
        assert_eq!(challenge(Scope::TasksWrite), r#"Bearer error="insufficient_scope", scope="tasks:write""#);
    }

    #[test]
    fn denials_count_per_scope_and_start_at_zero() {
        let r = Registry::new();
        let m = ScopeMetrics::register(&r).unwrap();
        m.denied(Scope::TasksWrite);
        let text = prometheus::TextEncoder::new().encode_to_string(&r.gather()).unwrap();
        assert!(text.contains(r#"gateway_scope_denials_total{scope="tasks:read"} 0"#), "{text}");
        assert!(text.contains(r#"gateway_scope_denials_total{scope="tasks:write"} 1"#), "{text}");
    }
}
