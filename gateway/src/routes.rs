//! The paths forwarded without a token (`[routes] public`).

use platform::config::ConfigError;

use crate::config::file::RoutesSection;

/// `[routes]`, validated: the public paths, matched exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoutes(Vec<String>);

impl TryFrom<&RoutesSection> for PublicRoutes {
    type Error = ConfigError;

    fn try_from(s: &RoutesSection) -> Result<Self, ConfigError> {
        if let Some(bad) = s.public.iter().find(|r| !r.starts_with('/')) {
            return Err(ConfigError::new("[routes] public", format!("route {bad:?} must start with '/'")));
        }
        Ok(Self(s.public.clone()))
    }
}

impl PublicRoutes {
    /// True when `path` (without query) is one of the public routes: exact match only, so
    /// `/tasks/health/../x` or an encoded variant still requires a token.
    pub fn is_public(&self, path: &str) -> bool {
        self.0.iter().any(|r| r == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_paths_are_public() {
        let routes = PublicRoutes::try_from(&RoutesSection::default()).unwrap();
        assert!(routes.is_public("/tasks/health"));
        assert!(routes.is_public("/tasks/openapi.json"));
        for path in ["/tasks/health/", "/tasks", "/tasks/openapi.json/", "/tasks/OPENAPI.json", "/tasks/openapi.jsonx"]
        {
            assert!(!routes.is_public(path), "{path}");
        }
    }

    #[test]
    fn a_route_without_a_leading_slash_is_refused() {
        let err = PublicRoutes::try_from(&RoutesSection { public: vec!["tasks/health".into()] }).unwrap_err();
        assert_eq!(err.key, "[routes] public");
    }
}
