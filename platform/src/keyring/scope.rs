//! OAuth 2.0 scopes of this system's tokens: the `scope` claim (RFC 8693 §4.2: one string of
//! space-separated scope tokens) and the set of scopes it grants.

use std::fmt;

/// Reading tasks: `GET`/`HEAD` on `/tasks` and `/tasks/{id}`.
pub const TASKS_READ: &str = "tasks:read";
/// Changing tasks: `POST`, `PUT`, `PATCH`, `DELETE` on `/tasks` and `/tasks/{id}`.
pub const TASKS_WRITE: &str = "tasks:write";
/// The `scope` claim of a login token: every task scope.
pub const LOGIN_SCOPE: &str = "tasks:read tasks:write";

/// One scope this system knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    TasksRead,
    TasksWrite,
}

impl Scope {
    /// Every scope, in the order [`ScopeSet`]'s `Display` writes them.
    pub const ALL: [Scope; 2] = [Scope::TasksRead, Scope::TasksWrite];

    /// The scope token, e.g. `tasks:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => TASKS_READ,
            Scope::TasksWrite => TASKS_WRITE,
        }
    }

    /// The scope a `/tasks` request with `method` needs: `tasks:read` for `GET`, `HEAD` and
    /// `OPTIONS`, `tasks:write` for everything else (`POST`, `PUT`, `PATCH`, `DELETE`, and any
    /// other method, so an unknown one never passes as a read).
    pub fn for_method(method: &http::Method) -> Scope {
        match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => Scope::TasksRead,
            _ => Scope::TasksWrite,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::TasksRead => 1,
            Scope::TasksWrite => 2,
        }
    }

    fn parse(token: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == token)
    }
}

/// A set of [`Scope`]s (a bit set: copying it costs nothing on the request path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

/// A `scope` string naming a scope this system does not know (RFC 6749 §5.2 `invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; known scopes: tasks:read, tasks:write")]
pub struct UnknownScope(pub String);

impl ScopeSet {
    /// No scope.
    pub const EMPTY: ScopeSet = ScopeSet(0);
    /// Every scope: what a login token grants.
    pub const ALL: ScopeSet = ScopeSet(3);

    /// Parses a `scope` value (RFC 6749 §3.3: scope tokens separated by single spaces; order
    /// and repetition do not matter). Every token must be a known scope.
    pub fn parse(value: &str) -> Result<ScopeSet, UnknownScope> {
        value.split(' ').filter(|t| !t.is_empty()).try_fold(ScopeSet::EMPTY, |set, token| {
            Scope::parse(token).map(|s| set.with(s)).ok_or_else(|| UnknownScope(token.chars().take(64).collect()))
        })
    }

    /// The scopes of a verified token's `scope` claim. A claim that is absent (tokens issued
    /// before scopes existed, all of them login tokens) grants every scope; unknown scope
    /// tokens in it grant nothing (a verifier never widens what it does not understand).
    pub fn from_claim(claim: Option<&str>) -> ScopeSet {
        match claim {
            None => ScopeSet::ALL,
            Some(value) => ScopeSet(value.split(' ').filter_map(Scope::parse).fold(0, |bits, s| bits | s.bit())),
        }
    }

    pub fn with(self, scope: Scope) -> ScopeSet {
        ScopeSet(self.0 | scope.bit())
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// `true` when every scope of `other` is in `self`.
    pub fn includes(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// The `scope` claim's form: known scopes in a fixed order, separated by single spaces.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_known_scopes_in_any_order_and_refuses_unknown_ones() {
        assert_eq!(ScopeSet::parse("tasks:write tasks:read"), Ok(ScopeSet::ALL));
        assert_eq!(ScopeSet::parse("tasks:read"), Ok(ScopeSet::EMPTY.with(Scope::TasksRead)));
        assert_eq!(ScopeSet::parse(""), Ok(ScopeSet::EMPTY));
        assert_eq!(ScopeSet::parse("tasks:read tasks:admin"), Err(UnknownScope("tasks:admin".into())));
        assert_eq!(ScopeSet::parse("TASKS:READ"), Err(UnknownScope("TASKS:READ".into())));
    }

    #[test]
    fn a_claim_grants_what_it_names_and_an_absent_claim_is_a_login_token() {
        assert_eq!(ScopeSet::from_claim(None), ScopeSet::ALL);
        assert_eq!(ScopeSet::from_claim(Some(LOGIN_SCOPE)), ScopeSet::ALL);
        let read = ScopeSet::from_claim(Some("tasks:read admin"));
        assert!(read.contains(Scope::TasksRead) && !read.contains(Scope::TasksWrite));
        assert!(ScopeSet::from_claim(Some("")).is_empty());
        assert_eq!(ScopeSet::ALL.to_string(), LOGIN_SCOPE);
        assert!(ScopeSet::ALL.includes(read) && !read.includes(ScopeSet::ALL));
    }

    #[test]
    fn methods_map_to_scopes_and_unknown_methods_need_write() {
        use http::Method;
        assert_eq!(Scope::for_method(&Method::GET), Scope::TasksRead);
        assert_eq!(Scope::for_method(&Method::HEAD), Scope::TasksRead);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::from_bytes(b"PURGE").unwrap()] {
            assert_eq!(Scope::for_method(&m), Scope::TasksWrite, "{m}");
        }
    }
}
