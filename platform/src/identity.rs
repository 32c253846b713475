//! The identity headers the gateway sets for task-svc, and the rule for stripping spoofed ones.
//!
//! task-svc trusts these headers and nothing else. The gateway removes every client-sent header
//! for which [`is_identity_header`] is true before it adds its own.

/// The verified user's id (decimal).
pub const USER_ID: &str = "x-user-id";
/// The verified user's username.
pub const USERNAME: &str = "x-user-name";
/// The verified user's email.
pub const EMAIL: &str = "x-user-email";

/// True for any header name that could carry an identity to task-svc: our three, anything
/// under `x-user-`, and the `x-authenticated-*` / `x-auth-*` families other proxies use.
/// Header names are case-insensitive; callers pass them as they came.
pub fn is_identity_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("x-user-")
        || lower.starts_with("x-user_")
        || lower.starts_with("x-authenticated-")
        || lower.starts_with("x-auth-")
        || lower == "x-forwarded-user"
        || lower == "x-remote-user"
        || lower == "remote-user"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_match_in_any_case() {
        for name in
            ["X-User-Id", "x-user-id", "X-USER-NAME", "x-user-email", "X-Authenticated-User", "X-Forwarded-User"]
        {
            assert!(is_identity_header(name), "{name}");
        }
        for name in ["authorization", "x-request-id", "content-type", "x-amzn-trace-id", "x-username"] {
            assert!(!is_identity_header(name), "{name}");
        }
    }
}
