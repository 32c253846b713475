//! Reading a credential before verifying it: the `Authorization: Bearer` value (RFC 6750 §2.1)
//! and the JWT header's key id (RFC 7515 §4.1.4), parsed once per token.

use super::header::read_header;
use super::{Alg, Rejection};

/// Tokens longer than this are refused before any decoding. Ours are ~450 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest `kid` accepted; ours are 16 hex digits.
pub const MAX_KID_BYTES: usize = 64;

/// Extracts the token from one `Authorization` header value: `Bearer <token>`, scheme
/// case-insensitive, exactly one token of RFC 6750 §2.1's `b64token` characters (letters,
/// digits, `-._~+/` and `=`). Errors: `TooLarge`, `Malformed` (no token, another scheme, or any
/// other character in the token: whitespace, `,`, anything not ASCII).
pub fn bearer_token(header_value: &str) -> Result<&str, Rejection> {
    if header_value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(Rejection::TooLarge);
    }
    let (scheme, rest) = header_value.trim().split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Malformed);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    // Every byte is looked at, with no early exit: the check runs on every request and over a
    // whole token (~450 bytes), and without the branch per byte it vectorizes.
    let outside = token.bytes().fold(false, |outside, b| outside | !is_b64token_byte(b));
    if outside {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

/// A character of `b64token` (RFC 6750 §2.1): ALPHA / DIGIT / `-` / `.` / `_` / `~` / `+` /
/// `/`, and `=` (the grammar's trailing padding; the JWS parse refuses it anywhere).
fn is_b64token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// A compact JWS whose header has been read strictly (size cap, a known `alg`, a `kid`, no
/// `crit` or key-carrying parameters; see [`super::header`]) but whose signature and claims have
/// not been checked yet. Verify it with [`super::Keyring::verify`], which also checks that `alg`
/// is the one the key named by `kid` is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedToken<'a> {
    raw: &'a str,
    alg: Alg,
    kid: String,
}

impl<'a> UnverifiedToken<'a> {
    /// Reads the header of `raw`. Errors: `Missing` (empty), `TooLarge`, `Malformed` (not a
    /// JWS, or no usable `kid`), `UnsupportedHeader` (`crit`, `jku`, `jwk`, `x5u`, `x5c`, or a
    /// `typ` other than JWT), `WrongAlgorithm` (anything but HS256, RS256, EdDSA).
    pub fn parse(raw: &'a str) -> Result<Self, Rejection> {
        if raw.is_empty() {
            return Err(Rejection::Missing);
        }
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLarge);
        }
        let header = read_header(raw)?;
        Ok(Self { raw, alg: header.alg, kid: header.kid })
    }

    /// The header's algorithm (not yet checked against the key's).
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The token as received.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The header's key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing_takes_exactly_one_token() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer_token("bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("Basic dXNlcg=="), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer a b"), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer a,b"), Err(Rejection::Malformed));
        // RFC 6750's b64token: these characters pass, any other is refused.
        assert_eq!(bearer_token("Bearer aZ09-._~+/=="), Ok("aZ09-._~+/=="));
        for bad in ["a;b", "a\"b", "a\tb", "a\u{a0}b", "a\u{2028}b", "a\u{e9}b", "a:b", "a\\b", "a%b", "a\u{0}b"] {
            assert_eq!(bearer_token(&format!("Bearer {bad}")), Err(Rejection::Malformed), "{bad:?}");
        }
        assert_eq!(bearer_token("Bearer "), Err(Rejection::Malformed));
        assert_eq!(bearer_token("Bearer"), Err(Rejection::Malformed));
    }

    #[test]
    fn headers_without_a_known_alg_or_kid_are_refused() {
        // {"alg":"none","kid":"x"} . {} . ""
        assert_eq!(
            UnverifiedToken::parse("eyJhbGciOiJub25lIiwia2lkIjoieCJ9.e30.").unwrap_err(),
            Rejection::WrongAlgorithm
        );
        // {"alg":"HS256"} . {} . "" : no kid
        assert_eq!(UnverifiedToken::parse("eyJhbGciOiJIUzI1NiJ9.e30.").unwrap_err(), Rejection::Malformed);
        assert_eq!(UnverifiedToken::parse("invalid-token").unwrap_err(), Rejection::Malformed);
        assert_eq!(UnverifiedToken::parse("").unwrap_err(), Rejection::Missing);
        assert_eq!(UnverifiedToken::parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(), Rejection::TooLarge);
    }
}
