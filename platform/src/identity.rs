//! The identity header the gateway sets for task-svc, and the rule for stripping spoofed ones.
//!
//! task-svc trusts this header and nothing else. The token's username and email are not
//! forwarded: task-svc has no use for them. The gateway removes every client-sent header
//! for which [`is_identity_header`] is true before it adds its own.

/// The verified user's id (decimal).
pub const USER_ID: &str = "x-user-id";

/// Name prefixes of identity header families, in canonical spelling (lower case, `-`).
const RESERVED_PREFIXES: [&[u8]; 3] = [b"x-user-", b"x-authenticated-", b"x-auth-"];
/// Whole names other proxies use to pass a user, in canonical spelling.
const RESERVED_NAMES: [&[u8]; 3] = [b"x-forwarded-user", b"x-remote-user", b"remote-user"];

/// True for any header name that could carry an identity to task-svc: ours, anything
/// under `x-user-`, the `x-authenticated-*` / `x-auth-*` families other proxies use, and
/// `x-forwarded-user`, `x-remote-user`, `remote-user`.
///
/// Every spelling matches: any case, and `_` in place of any `-` (`X_User_Id`, `x_USER-id`,
/// `X-Authenticated_User`). Servers and frameworks that map headers to variables (CGI's
/// `HTTP_X_USER_ID`, nginx's `$http_x_user_id`, WSGI) read `_` and `-` as the same name, so a
/// rule that strips only one spelling leaves the other for the next hop to trust.
/// Does not allocate.
pub fn is_identity_header(name: &str) -> bool {
    let name = name.as_bytes();
    RESERVED_PREFIXES.iter().any(|p| name.len() >= p.len() && same_name(&name[..p.len()], p))
        || RESERVED_NAMES.iter().any(|n| same_name(name, n))
}

/// `name` equals `canonical` (lower case, `-`) ignoring ASCII case and `_`/`-`.
fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical).all(|(&b, &c)| {
            let b = if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
            b == c
        })
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

    #[test]
    fn identity_headers_match_with_underscores_in_any_position() {
        for name in [
            "X_User_Id",
            "x_USER-id",
            "X-User_Id",
            "x_user_email",
            "X_USER_NAME",
            "X-Authenticated_User",
            "x_authenticated_user",
            "X_Auth_Token",
            "x-auth_user",
            "X_Forwarded_User",
            "x-forwarded_user",
            "X_Remote_User",
            "Remote_User",
            "REMOTE-USER",
            "x_user_",
        ] {
            assert!(is_identity_header(name), "{name}");
        }
        // Close, but not a reserved name: a different word, or no separator after the family.
        for name in [
            "x_username",
            "x-userid",
            "xuser-id",
            "x_forwarded_users",
            "remote_username",
            "x_authz",
            "x-author",
            "",
            "x",
        ] {
            assert!(!is_identity_header(name), "{name}");
        }
    }
}
