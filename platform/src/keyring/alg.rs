//! The signing algorithms of this system (RFC 7518 §3.1 names, RFC 8037 for EdDSA).

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;

/// How tokens are signed: one mode per deployment (`JWT_ALG`), and every key pinned to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alg {
    /// HMAC-SHA256 with a shared secret (RFC 7518 §3.2): every holder can also sign.
    #[default]
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), keys of at least 2048 bits.
    RS256,
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
}

impl Alg {
    /// Every algorithm, for parsing and error messages.
    pub const ALL: [Alg; 3] = [Self::HS256, Self::RS256, Self::EdDSA];

    /// The JWS `alg` value (RFC 7518 §3.1; `EdDSA` per RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether keys of this algorithm are a public/private pair (published in the JWKS).
    pub fn is_asymmetric(self) -> bool {
        self != Self::HS256
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::RS256 => Algorithm::RS256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`Alg`]: names the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of HS256, RS256, EdDSA")]
pub struct UnknownAlg;

impl FromStr for Alg {
    type Err = UnknownAlg;

    /// Exact, case-sensitive JWS names: `HS256`, `RS256`, `EdDSA` (`alg` values are
    /// case-sensitive, RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or(UnknownAlg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Alg::ALL {
            assert_eq!(a.as_str().parse::<Alg>(), Ok(a));
        }
        assert_eq!(Alg::default(), Alg::HS256);
        assert!("rs256".parse::<Alg>().is_err());
        assert!("none".parse::<Alg>().is_err());
        assert!("ES256".parse::<Alg>().is_err());
    }
}
