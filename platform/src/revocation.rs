//! The revocation feed between auth-svc and the gateways: what `GET /internal/revocations`
//! serves and the gateways apply. One definition, so both sides agree on the wire shape.
//!
//! A token is revoked when its `jti` was revoked (`POST /auth/logout`) or when its user
//! revoked every token issued up to a cut-off (`POST /auth/logout-all`): `iat < issued_before`,
//! or when the API key its `client_id` claim names was revoked (`DELETE /auth/api-keys/{id}`).
//! Entries are ordered by `seq`, a cursor that only grows; a gateway asks for entries after the
//! last `seq` it applied, so each pull transfers only what changed.

use serde::{Deserialize, Serialize};

/// Path of the feed on auth-svc. Outside `/auth` on purpose: the ALB routes only `/auth` and
/// `/auth/*` to auth-svc, so the feed is reachable from inside the VPC (Cloud Map) only.
pub const FEED_PATH: &str = "/internal/revocations";
/// Default and largest page of the feed.
pub const DEFAULT_PAGE: u32 = 1000;
pub const MAX_PAGE: u32 = 5000;
/// Seconds an entry is kept after its `exp`, on both sides (auth-svc's table and feed, the
/// gateways' in-memory list): the largest clock leeway either side may be configured with
/// (`JWT_LEEWAY_SECS`, `[jwt] leeway_secs`, both at most 60). A token is accepted until
/// `exp + leeway`, so a revocation dropped at `exp` would let a revoked token back in for the
/// leeway.
pub const RETAIN_AFTER_EXP_SECS: i64 = 60;

/// One revocation. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// One token, by its `jti`, until its `exp`.
    Token { seq: i64, user_id: i64, jti: String, exp: i64 },
    /// Every token of `user_id` with `iat < issued_before`; `exp` is when the last of them
    /// expires (`issued_before` + the maximum token lifetime).
    User { seq: i64, user_id: i64, issued_before: i64, exp: i64 },
    /// Every token naming the API key `client_id` (its `client_id` claim), whenever issued: the
    /// key of `user_id` was revoked. `exp` is when the last of its tokens expires (the
    /// revocation time + the longest client credentials token lifetime).
    ApiKey { seq: i64, user_id: i64, client_id: String, exp: i64 },
}

impl Revocation {
    pub fn seq(&self) -> i64 {
        match self {
            Self::Token { seq, .. } | Self::User { seq, .. } | Self::ApiKey { seq, .. } => *seq,
        }
    }

    /// The `exp` of the tokens the entry covers (unix seconds); it can match no token that is
    /// still accepted after `exp + RETAIN_AFTER_EXP_SECS`.
    pub fn exp(&self) -> i64 {
        match self {
            Self::Token { exp, .. } | Self::User { exp, .. } | Self::ApiKey { exp, .. } => *exp,
        }
    }
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationPage {
    /// Live entries with `seq > after`, by `seq`, at most `limit`.
    pub revocations: Vec<Revocation>,
    /// The `after` to ask with next (the last entry's `seq`, or `after` when empty).
    pub next_cursor: i64,
    /// The highest `seq` ever assigned. Lower than a client's cursor only when the database
    /// was replaced: the client then starts again from 0.
    pub latest: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_tagged_by_kind() {
        let page = RevocationPage {
            revocations: vec![
                Revocation::Token { seq: 1, user_id: 5, jti: "ab".into(), exp: 10 },
                Revocation::User { seq: 2, user_id: 5, issued_before: 7, exp: 20 },
                Revocation::ApiKey { seq: 3, user_id: 5, client_id: "tmk_x".into(), exp: 30 },
            ],
            next_cursor: 3,
            latest: 3,
        };
        let json = serde_json::to_value(&page).unwrap();
        assert_eq!(json["revocations"][0]["kind"], "token");
        assert_eq!(json["revocations"][1]["kind"], "user");
        assert_eq!(json["revocations"][1]["issued_before"], 7);
        assert_eq!(json["revocations"][2]["kind"], "api_key");
        assert_eq!(json["revocations"][2]["client_id"], "tmk_x");
        assert_eq!(serde_json::from_value::<RevocationPage>(json).unwrap(), page);
    }
}
