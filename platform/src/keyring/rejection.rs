//! Why a token was refused: one enum shared by auth-svc and the gateway, with a stable
//! machine-readable `reason` that travels between our own services in the error body's
//! `reason` field (never matched on message text).

/// Why a token was not accepted. [`Rejection::reason`] is a low-cardinality metric label and
/// the `reason` field of the 401 body; [`Rejection::from_reason`] maps it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    #[error("No authentication token provided")]
    Missing,
    #[error("Authentication token is too large")]
    TooLarge,
    #[error("Invalid token")]
    Malformed,
    #[error("Token signed with an unknown key")]
    UnknownKid,
    #[error("Invalid token")]
    BadSignature,
    #[error("Token has expired")]
    Expired,
    #[error("Token is not valid yet")]
    NotYetValid,
    /// `iat` lies in the future by more than the leeway (RFC 7519 §4.1.6).
    #[error("Token was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` exceeds the configured maximum lifetime.
    #[error("Token lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    #[error("Invalid token")]
    WrongIssuer,
    #[error("Invalid token")]
    WrongAudience,
    #[error("Invalid token")]
    WrongAlgorithm,
    /// The JOSE header carries a parameter we refuse (RFC 7515 §4.1, RFC 8725): `crit`, a key
    /// or key location (`jku`, `jwk`, `x5u`, `x5c`), or a `typ` other than `JWT`.
    #[error("Invalid token")]
    UnsupportedHeader,
    /// The token's `jti`, or every token of its user issued up to a cut-off, was revoked
    /// (logout, logout-all).
    #[error("Token has been revoked")]
    Revoked,
}

impl Rejection {
    /// Every variant, for the round-trip test and for mapping reasons back.
    pub const ALL: [Rejection; 14] = [
        Self::Missing,
        Self::TooLarge,
        Self::Malformed,
        Self::UnknownKid,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::LifetimeTooLong,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::WrongAlgorithm,
        Self::UnsupportedHeader,
        Self::Revoked,
    ];

    /// The stable machine-readable name, e.g. `expired`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "iat_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::UnsupportedHeader => "unsupported_header",
            Self::Revoked => "revoked",
        }
    }

    /// The variant whose [`Rejection::reason`] is `reason`; `None` for anything else.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.reason() == reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_and_map_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Rejection::ALL {
            assert!(seen.insert(r.reason()), "duplicate reason {}", r.reason());
            assert_eq!(Rejection::from_reason(r.reason()), Some(r));
        }
        assert_eq!(Rejection::from_reason("Invalid token"), None);
        assert_eq!(Rejection::from_reason(""), None);
    }
}
