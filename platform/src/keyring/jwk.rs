//! Public keys as JSON Web Keys (RFC 7517) and the key set auth-svc publishes at
//! `GET /auth/.well-known/jwks.json`: RSA keys (RFC 7518 §6.3.1: `n`, `e`) for RS256 and OKP
//! Ed25519 keys (RFC 8037 §2: `crv`, `x`) for EdDSA, each with `kid` = its RFC 7638 thumbprint,
//! `alg` and `use` = `sig`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Alg;

/// At most this many keys in a JWKS: the ALB's JWT verification limit.
pub const MAX_JWKS_KEYS: usize = 10;
/// At most this many bytes in a JWKS document: the ALB's limit (150 KB).
pub const MAX_JWKS_BYTES: usize = 150 * 1024;
/// Smallest RSA modulus accepted, bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// One public key (RFC 7517 §4). Unused members are absent from the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicJwk {
    /// `RSA` or `OKP`.
    pub kty: String,
    /// RFC 7638 thumbprint of the key (base64url SHA-256 of the required members).
    pub kid: String,
    /// The one algorithm this key is used with: `RS256` or `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// RSA modulus, base64url big-endian without leading zeros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// OKP curve: `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// OKP public key, base64url (32 bytes for Ed25519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
}

/// Why a JWK or JWKS is not usable. Messages describe the shape, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("JWKS is {0} bytes; at most {MAX_JWKS_BYTES} are accepted")]
    TooLarge(usize),
    #[error("JWKS has {0} keys; at most {MAX_JWKS_KEYS} are accepted")]
    TooManyKeys(usize),
    #[error("JWKS is not a JSON object with a \"keys\" array of JWKs")]
    NotJwks,
    #[error("JWK {kid:?}: {what}")]
    Unusable { kid: String, what: &'static str },
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 7638 §3 thumbprint of the required members, already base64url encoded, given in
/// lexicographic order with no whitespace: base64url(SHA-256(JSON)).
fn thumbprint(canonical_json: &str) -> String {
    b64(&Sha256::digest(canonical_json.as_bytes()))
}

/// RFC 7638 thumbprint of an RSA key with base64url members `n` and `e`.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))
}

/// RFC 7638 thumbprint (RFC 8037 §2) of an Ed25519 key with base64url member `x`.
pub fn ed25519_thumbprint(x: &str) -> String {
    thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#))
}

impl PublicJwk {
    /// The JWK of an RSA public key from its big-endian modulus and exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Self {
        let (n, e) = (b64(strip_zeros(n)), b64(strip_zeros(e)));
        Self {
            kty: "RSA".into(),
            kid: rsa_thumbprint(&n, &e),
            alg: Alg::RS256.as_str().into(),
            use_: "sig".into(),
            n: Some(n),
            e: Some(e),
            crv: None,
            x: None,
        }
    }

    /// The JWK of an Ed25519 public key (its 32 bytes).
    pub fn ed25519(public: &[u8; 32]) -> Self {
        let x = b64(public);
        Self {
            kty: "OKP".into(),
            kid: ed25519_thumbprint(&x),
            alg: Alg::EdDSA.as_str().into(),
            use_: "sig".into(),
            n: None,
            e: None,
            crv: Some("Ed25519".into()),
            x: Some(x),
        }
    }

    /// Checks the key and returns its pinned algorithm and verification key. Refuses: an `alg`
    /// other than RS256/EdDSA or not matching `kty`, `use` other than `sig`, RSA moduli under
    /// [`MIN_RSA_BITS`], Ed25519 keys not 32 bytes, and a `kid` that is not the key's RFC 7638
    /// thumbprint (so a key set cannot name one key with another's id).
    pub fn verifier(&self) -> Result<(Alg, DecodingKey), JwkError> {
        let bad = |what| JwkError::Unusable { kid: self.kid.clone(), what };
        if self.use_ != "sig" {
            return Err(bad("\"use\" is not \"sig\""));
        }
        let alg: Alg = self.alg.parse().map_err(|_| bad("\"alg\" is not RS256 or EdDSA"))?;
        match (alg, self.kty.as_str()) {
            (Alg::RS256, "RSA") => {
                let (Some(n), Some(e)) = (&self.n, &self.e) else { return Err(bad("RSA key without n and e")) };
                let modulus = URL_SAFE_NO_PAD.decode(n).map_err(|_| bad("n is not base64url"))?;
                if strip_zeros(&modulus).len() * 8 < MIN_RSA_BITS {
                    return Err(bad("RSA modulus shorter than 2048 bits"));
                }
                if rsa_thumbprint(n, e) != self.kid {
                    return Err(bad("kid is not the key's RFC 7638 thumbprint"));
                }
                let key = DecodingKey::from_rsa_components(n, e).map_err(|_| bad("n or e is not base64url"))?;
                Ok((alg, key))
            }
            (Alg::EdDSA, "OKP") => {
                let Some(x) = &self.x else { return Err(bad("OKP key without x")) };
                if self.crv.as_deref() != Some("Ed25519") {
                    return Err(bad("OKP curve is not Ed25519"));
                }
                let bytes = URL_SAFE_NO_PAD.decode(x).map_err(|_| bad("x is not base64url"))?;
                if bytes.len() != 32 {
                    return Err(bad("Ed25519 key is not 32 bytes"));
                }
                if ed25519_thumbprint(x) != self.kid {
                    return Err(bad("kid is not the key's RFC 7638 thumbprint"));
                }
                let key = DecodingKey::from_ed_components(x).map_err(|_| bad("x is not base64url"))?;
                Ok((alg, key))
            }
            _ => Err(bad("kty does not match alg")),
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A JWK Set (RFC 7517 §5): `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

impl Jwks {
    /// Parses a JWKS document within the ALB's limits ([`MAX_JWKS_BYTES`],
    /// [`MAX_JWKS_KEYS`]). Keys are checked when a keyring is built from the set.
    pub fn parse(body: &[u8]) -> Result<Self, JwkError> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(JwkError::TooLarge(body.len()));
        }
        let set: Jwks = serde_json::from_slice(body).map_err(|_| JwkError::NotJwks)?;
        if set.keys.len() > MAX_JWKS_KEYS {
            return Err(JwkError::TooManyKeys(set.keys.len()));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn rfc7638_example_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(rsa_thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        let modulus = URL_SAFE_NO_PAD.decode(n).unwrap();
        let jwk = PublicJwk::rsa(&modulus, &[0, 1, 0, 1]);
        assert_eq!(jwk.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(jwk.e.as_deref(), Some("AQAB"));
        assert_eq!(jwk.verifier().unwrap().0, Alg::RS256);
    }

    /// RFC 8037 Appendix A.3: the thumbprint of the Ed25519 example key.
    #[test]
    fn rfc8037_example_thumbprint() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(ed25519_thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jwk = PublicJwk::ed25519(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap());
        assert_eq!(jwk.verifier().unwrap().0, Alg::EdDSA);
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert!(json.get("n").is_none());
    }

    #[test]
    fn keys_with_a_wrong_kid_alg_use_or_size_are_refused() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let good = PublicJwk::ed25519(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap());
        type Change = fn(&mut PublicJwk);
        let cases: [(&str, Change); 6] = [
            ("kid", |k| k.kid = "other".into()),
            ("alg", |k| k.alg = "HS256".into()),
            ("alg kty", |k| k.alg = "RS256".into()),
            ("use", |k| k.use_ = "enc".into()),
            ("crv", |k| k.crv = Some("X25519".into())),
            ("x", |k| k.x = Some("AAAA".into())),
        ];
        for (name, change) in cases {
            let mut k = good.clone();
            change(&mut k);
            assert!(k.verifier().is_err(), "{name}");
        }
        let short = PublicJwk::rsa(&[0xc5; 128], &[1, 0, 1]);
        assert!(matches!(short.verifier(), Err(JwkError::Unusable { .. })));
    }

    #[test]
    fn jwks_limits_are_the_albs() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let key = PublicJwk::ed25519(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap());
        let set = |n| serde_json::to_vec(&Jwks { keys: vec![key.clone(); n] }).unwrap();
        assert_eq!(Jwks::parse(&set(10)).unwrap().keys.len(), 10);
        assert_eq!(Jwks::parse(&set(11)), Err(JwkError::TooManyKeys(11)));
        let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(MAX_JWKS_BYTES));
        assert!(matches!(Jwks::parse(big.as_bytes()), Err(JwkError::TooLarge(_))));
        assert_eq!(Jwks::parse(b"[]"), Err(JwkError::NotJwks));
        assert_eq!(Jwks::parse(br#"{"keys":[]}"#).unwrap(), Jwks::default());
    }
}
