//! Reading a token request (RFC 6749 §4.4.2): the form body and the client's credentials, by
//! HTTP Basic (§2.3.1) or by the `client_id` and `client_secret` parameters.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use platform::Secret;

use super::error::OAuthError;

/// The parameters of a token request this server reads; every other one is ignored (§3.2).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

/// Parses an `application/x-www-form-urlencoded` body (§4.4.2, Appendix B). A parameter sent
/// without a value counts as absent (§3.1); one sent twice is `invalid_request` (§3.1, §3.2).
pub fn parse_form(body: &[u8]) -> Result<TokenForm, OAuthError> {
    let mut form = TokenForm::default();
    let mut secret: Option<String> = None;
    for (name, value) in form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        let slot = match name.as_ref() {
            "grant_type" => &mut form.grant_type,
            "scope" => &mut form.scope,
            "client_id" => &mut form.client_id,
            "client_secret" => &mut secret,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::InvalidRequest(format!("parameter {name} is repeated")));
        }
        *slot = Some(value.into_owned());
    }
    form.client_secret = secret.map(Secret::new);
    Ok(form)
}

/// Whether `headers` declare a form body (`application/x-www-form-urlencoded`, any parameters).
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// A client's claimed identity and secret, not yet checked.
#[derive(Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The client's credentials from exactly one method: `Authorization: Basic` (§2.3.1: the
/// form-urlencoded id and secret as RFC 7617 user-id and password) or the `client_id` and
/// `client_secret` parameters. Errors: `invalid_request` for both methods at once or two
/// `Authorization` headers; `invalid_client` for none, an incomplete one, or another scheme.
pub fn client_credentials(headers: &HeaderMap, form: &mut TokenForm) -> Result<ClientCredentials, OAuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let header = match (authorization.next(), authorization.next()) {
        (_, Some(_)) => return Err(OAuthError::InvalidRequest("send one Authorization header".into())),
        (header, None) => header,
    };
    let in_form = form.client_id.is_some() || form.client_secret.is_some();
    match header {
        Some(_) if in_form => Err(OAuthError::InvalidRequest(
            "use one client authentication method: HTTP Basic or the client_id and client_secret parameters".into(),
        )),
        Some(value) => basic(value.as_bytes()).ok_or(OAuthError::InvalidClient),
        None => match (form.client_id.take(), form.client_secret.take()) {
            (Some(client_id), Some(client_secret)) => Ok(ClientCredentials { client_id, client_secret }),
            _ => Err(OAuthError::InvalidClient),
        },
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`; the scheme name in any case (RFC 9110
/// §11.1). `None` when it is not that.
fn basic(value: &[u8]) -> Option<ClientCredentials> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let decoded = STANDARD.decode(encoded).or_else(|_| STANDARD_NO_PAD.decode(encoded)).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let (client_id, client_secret) = (form_decode(id)?, form_decode(secret)?);
    (!client_id.is_empty() && !client_secret.is_empty())
        .then(|| ClientCredentials { client_id, client_secret: Secret::new(client_secret) })
}

/// Undoes `application/x-www-form-urlencoded` on one value: `+` is a space, `%XX` a byte.
fn form_decode(value: &str) -> Option<String> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in authorization {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn basic_header(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn the_form_is_decoded_empty_values_are_absent_and_repeats_are_refused() {
        let form =
            parse_form(b"grant_type=client_credentials&scope=tasks%3Aread+tasks%3Awrite&client_id=&x=1").unwrap();
        assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(form.scope.as_deref(), Some("tasks:read tasks:write"));
        assert_eq!(form.client_id, None, "a parameter without a value counts as absent");
        let err = parse_form(b"grant_type=client_credentials&grant_type=password").unwrap_err();
        assert!(matches!(err, OAuthError::InvalidRequest(m) if m.contains("grant_type")));
        assert_eq!(parse_form(b"").unwrap(), TokenForm::default());
    }

    #[test]
    fn a_form_body_is_recognised_with_any_parameters() {
        let mut h = HeaderMap::new();
        assert!(!is_form(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(is_form(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_form(&h));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut form = TokenForm::default();
        let c = client_credentials(&headers(&[&basic_header("tmk_a%2Bb", "tms_x+y%3Az")]), &mut form).unwrap();
        assert_eq!((c.client_id.as_str(), c.client_secret.expose()), ("tmk_a+b", "tms_x y:z"));
        let c = client_credentials(&headers(&["bAsIc dG1rX2E6dG1zX2I"]), &mut form).unwrap();
        assert_eq!((c.client_id.as_str(), c.client_secret.expose()), ("tmk_a", "tms_b"), "unpadded, any case");
    }

    #[test]
    fn exactly_one_authentication_method_is_accepted() {
        let mut form = parse_form(b"client_id=tmk_a&client_secret=tms_b").unwrap();
        let c = client_credentials(&HeaderMap::new(), &mut form).unwrap();
        assert_eq!((c.client_id.as_str(), c.client_secret.expose()), ("tmk_a", "tms_b"));

        let mut both = parse_form(b"client_id=tmk_a").unwrap();
        let err = client_credentials(&headers(&[&basic_header("tmk_a", "tms_b")]), &mut both).unwrap_err();
        assert!(matches!(err, OAuthError::InvalidRequest(_)), "{err:?}");
        let two = headers(&[&basic_header("tmk_a", "tms_b"), &basic_header("tmk_a", "tms_b")]);
        assert!(matches!(client_credentials(&two, &mut TokenForm::default()), Err(OAuthError::InvalidRequest(_))));

        for (auth, body) in [
            (vec![], &b""[..]),
            (vec![], b"client_id=tmk_a"),
            (vec![], b"client_secret=tms_b"),
            (vec!["Bearer abc"], b""),
            (vec!["Basic !!!"], b""),
            (vec!["Basic dG1rX2E="], b""),
            (vec!["Basic OnRtc19i"], b""),
        ] {
            let mut form = parse_form(body).unwrap();
            let err = client_credentials(&headers(&auth), &mut form).unwrap_err();
            assert!(matches!(err, OAuthError::InvalidClient), "{auth:?} {body:?}: {err:?}");
        }
    }
}
