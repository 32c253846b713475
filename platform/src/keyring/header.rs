//! The strict reading of a token's JOSE header before any key is touched (RFC 7515 §4.1,
//! RFC 8725 §2.1 and §3.1): the header names an algorithm we know, a key id, and nothing that
//! would change how the token must be processed or where the key comes from.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{Alg, MAX_KID_BYTES, Rejection};

/// Header parameters that make a verifier take a key from the token itself (RFC 7515 §4.1.2,
/// §4.1.3, §4.1.5, §4.1.6). We only ever use our own keys (RFC 8725 §3.10): refused.
const KEY_FROM_TOKEN: [&str; 4] = ["jku", "jwk", "x5u", "x5c"];

/// The header members this system acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoseHeader {
    pub alg: Alg,
    pub kid: String,
}

/// Reads and checks the header of the compact JWS `raw`. Errors:
/// - `Malformed`: not three segments, header not base64url JSON object, no `alg`, no usable
///   `kid` (1..=[`MAX_KID_BYTES`] bytes);
/// - `UnsupportedHeader`: `crit` present (RFC 7515 §4.1.11: we understand no extension),
///   `jku`/`jwk`/`x5u`/`x5c` present, or `typ` other than `JWT` (case-insensitive, with or
///   without `application/`, RFC 7515 §4.1.9, RFC 7519 §5.1);
/// - `WrongAlgorithm`: `alg` not one of HS256, RS256, EdDSA (`none` included, RFC 8725 §3.1).
pub(crate) fn read_header(raw: &str) -> Result<JoseHeader, Rejection> {
    let mut segments = raw.split('.');
    let (Some(head), Some(_), Some(_), None) = (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(Rejection::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| Rejection::Malformed)?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)?;
    if header.contains_key("crit") || KEY_FROM_TOKEN.iter().any(|k| header.contains_key(*k)) {
        return Err(Rejection::UnsupportedHeader);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if is_jwt_type(t) => {}
        Some(_) => return Err(Rejection::UnsupportedHeader),
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.parse::<Alg>().map_err(|_| Rejection::WrongAlgorithm)?,
        Some(_) => return Err(Rejection::WrongAlgorithm),
        None => return Err(Rejection::Malformed),
    };
    let kid = match header.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_BYTES => k.clone(),
        _ => return Err(Rejection::Malformed),
    };
    Ok(JoseHeader { alg, kid })
}

fn is_jwt_type(typ: &str) -> bool {
    let t = typ.strip_prefix("application/").or_else(|| typ.strip_prefix("APPLICATION/")).unwrap_or(typ);
    t.eq_ignore_ascii_case("jwt")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token whose header is `header` (JSON), with a dummy payload and signature.
    pub(crate) fn with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    fn read(header: &str) -> Result<JoseHeader, Rejection> {
        read_header(&with_header(header))
    }

    #[test]
    fn known_algorithms_with_a_kid_are_read() {
        for a in Alg::ALL {
            let h = read(&format!(r#"{{"alg":"{a}","kid":"k1","typ":"JWT"}}"#)).unwrap();
            assert_eq!(h, JoseHeader { alg: a, kid: "k1".into() });
        }
        // typ is case-insensitive and may carry the media type prefix.
        for typ in ["jwt", "Jwt", "application/jwt", "application/JWT"] {
            assert!(read(&format!(r#"{{"alg":"RS256","kid":"k","typ":"{typ}"}}"#)).is_ok(), "{typ}");
        }
    }

    #[test]
    fn none_and_unknown_algorithms_are_the_wrong_algorithm() {
        assert_eq!(read(r#"{"alg":"none","kid":"k"}"#), Err(Rejection::WrongAlgorithm));
        assert_eq!(read(r#"{"alg":"ES256","kid":"k"}"#), Err(Rejection::WrongAlgorithm));
        assert_eq!(read(r#"{"alg":"rs256","kid":"k"}"#), Err(Rejection::WrongAlgorithm));
        assert_eq!(read(r#"{"alg":7,"kid":"k"}"#), Err(Rejection::WrongAlgorithm));
        assert_eq!(read(r#"{"kid":"k"}"#), Err(Rejection::Malformed));
    }

    #[test]
    fn crit_key_sources_and_other_types_are_unsupported() {
        for extra in [
            r#""crit":["exp"]"#,
            r#""crit":[]"#,
            r#""jku":"https://evil.example/jwks.json""#,
            r#""jwk":{"kty":"oct","k":"AAAA"}"#,
            r#""x5u":"https://evil.example/cert.pem""#,
            r#""x5c":["MIIB"]"#,
            r#""typ":"at+jwt""#,
            r#""typ":"JWE""#,
            r#""typ":1"#,
        ] {
            let h = format!(r#"{{"alg":"RS256","kid":"k",{extra}}}"#);
            assert_eq!(read(&h), Err(Rejection::UnsupportedHeader), "{h}");
        }
    }

    #[test]
    fn shapes_other_than_a_compact_jws_with_a_kid_are_malformed() {
        assert_eq!(read(r#"{"alg":"HS256"}"#), Err(Rejection::Malformed));
        assert_eq!(read(r#"{"alg":"HS256","kid":""}"#), Err(Rejection::Malformed));
        assert_eq!(read(r#"{"alg":"HS256","kid":3}"#), Err(Rejection::Malformed));
        let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(MAX_KID_BYTES + 1));
        assert_eq!(read(&long), Err(Rejection::Malformed));
        assert_eq!(read("[1]"), Err(Rejection::Malformed));
        assert_eq!(read_header("a.b"), Err(Rejection::Malformed));
        assert_eq!(read_header("a.b.c.d"), Err(Rejection::Malformed));
        assert_eq!(read_header("!!.e30.c2ln"), Err(Rejection::Malformed));
    }
}
