//! The user resource: what a client may send to register or log in, the rules each field must
//! meet, and what registration returns. A body is parsed here once, into types that can only
//! hold valid values ([`Username`], [`Email`], [`Password`], [`LoginName`]); handlers and
//! queries take those types, never raw strings.
//!
//! The limits are the database's (migrations/): `users.username` is `varchar(50)` with the CHECK
//! `users_username_format`, `users.email` is `varchar(100)` with `users_email_format`. Lengths
//! count characters (Unicode scalar values), as `varchar(n)` and `char_length` do, never bytes.
//!
//! # Comparing usernames
//! Usernames are compared by one key, [`UsernameKey`]: NFKC, Unicode lower case, NFKC again
//! (so `ＡＬＩＣＥ`, `ａｌｉｃｅ`, `Alice` and `alice` are one name, as are `ﬁona` and `fiona`).
//! It is computed by [`UsernameKey::of`] only, and used for everything that compares
//! usernames: the unique index (`users.username_key`, see below), login's lookup
//! ([`crate::db::credentials_by_username`]) and the per-account login throttle's key.
//!
//! In SQL the key is the generated column `users.username_key`, `lower(username COLLATE "C")`
//! (migration `20261203000001_username_key.sql`), with the unique index
//! `users_username_key_key`. That expression is this key for every name the table can hold:
//! CHECK `users_username_format` admits ASCII letters, digits and `_.-` only, for which NFKC
//! changes nothing and lower case is ASCII lower case (`COLLATE "C"` keeps PostgreSQL's
//! `lower()` to ASCII whatever the database's locale). A login's key, computed in Rust from any
//! string, is compared with that column; the tests check both agree on every allowed character.

use chrono::{DateTime, Utc};
use platform::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
pub use crate::username_key::UsernameKey;

/// Usernames are 3 to 50 characters (`users.username varchar(50)`, CHECK `users_username_format`).
pub const MIN_USERNAME_CHARS: usize = 3;
pub const MAX_USERNAME_CHARS: usize = 50;
/// Emails are at most 100 characters (`users.email varchar(100)`).
pub const MAX_EMAIL_CHARS: usize = 100;
/// Passwords are 8 to 128 characters, hashed in full (never truncated).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// What a username may hold besides ASCII letters and digits.
const USERNAME_PUNCTUATION: [char; 3] = ['_', '.', '-'];

// `POST /auth/register` body. (Plain comments on the wire types: a doc comment would become a
// schema description and change the served OpenAPI document.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 50 characters: letters, digits, `_`, `.`, `-`.
    #[schema(example = "testuser")]
    pub username: Option<String>,
    /// Up to 100 characters; unique regardless of case.
    #[schema(example = "test@example.com")]
    pub email: Option<String>,
    /// 8 to 128 characters, never truncated.
    #[schema(example = "SecurePass123!")]
    pub password: Option<String>,
}

// `POST /auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "testuser")]
    pub username: Option<String>,
    #[schema(example = "SecurePass123!")]
    pub password: Option<String>,
}

// An account as registration returns it (a `users` row; never the password hash).
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct RegisteredUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    #[serde(serialize_with = "platform::timestamp::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// A name an account may have: [`MIN_USERNAME_CHARS`] to [`MAX_USERNAME_CHARS`] ASCII letters,
/// digits, `_`, `.` and `-` (the same rule as the CHECK `users_username_format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Errors: [`ApiError::BadRequest`] naming the rule.
    pub fn parse(value: String) -> Result<Self, ApiError> {
        let chars = value.chars().count();
        let allowed = |c: char| c.is_ascii_alphanumeric() || USERNAME_PUNCTUATION.contains(&c);
        if !(MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&chars) || !value.chars().all(allowed) {
            return Err(ApiError::BadRequest(format!(
                "username must be {MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} characters: letters, digits, '_', '.' or '-'"
            )));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key this name is compared by (see the module docs).
    pub fn key(&self) -> UsernameKey {
        UsernameKey::of(&self.0)
    }
}

/// A plausible address of at most [`MAX_EMAIL_CHARS`] characters: `local@domain`, the local
/// part non-empty, one `@`, a dot inside the domain, no whitespace or control characters.
/// Deliverability is not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Errors: [`ApiError::BadRequest`] naming the rule.
    pub fn parse(value: String) -> Result<Self, ApiError> {
        let valid = value.chars().count() <= MAX_EMAIL_CHARS
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "email must be a valid address of at most {MAX_EMAIL_CHARS} characters"
            )));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new account's password: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`] characters.
/// `Debug` shows `[redacted]`.
#[derive(Debug)]
pub struct Password(Secret);

impl Password {
    /// Errors: [`ApiError::BadRequest`] naming the rule.
    pub fn parse(value: String) -> Result<Self, ApiError> {
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&value.chars().count()) {
            return Err(ApiError::BadRequest(format!(
                "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
            )));
        }
        Ok(Self(Secret::new(value)))
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A registration that meets every rule.
#[derive(Debug)]
pub struct Registration {
    pub username: Username,
    pub email: Email,
    pub password: Password,
}

/// A field every body must carry: present, not empty, without NUL characters (PostgreSQL text
/// cannot hold NUL).
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if v.contains('\0') => Err(ApiError::BadRequest(format!("{field} must not contain NUL characters"))),
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::BadRequest(format!("{field} is required"))),
    }
}

impl Registration {
    /// Errors: [`ApiError::BadRequest`]. Every field is checked for presence before any is
    /// checked against its rule, so a body missing a field is told that first.
    pub fn parse(body: RegisterRequest) -> Result<Self, ApiError> {
        let username = required(body.username, "username")?;
        let email = required(body.email, "email")?;
        let password = required(body.password, "password")?;
        Ok(Self {
            username: Username::parse(username)?,
            email: Email::parse(email)?,
            password: Password::parse(password)?,
        })
    }
}

/// A username as a login typed it, in any case: at most [`MAX_USERNAME_CHARS`] characters,
/// without NUL. The rest of the [`Username`] rule is deliberately not applied: a name that
/// breaks it finds no account, and is counted by the throttle and costs a hash like any other
/// unknown name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName(String);

impl LoginName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key this name is compared by (see the module docs).
    pub fn key(&self) -> UsernameKey {
        UsernameKey::of(&self.0)
    }
}

/// The credentials of a login. `Debug` does not show the password.
#[derive(Debug)]
pub struct LoginCredentials {
    pub username: LoginName,
    pub password: Secret,
}

impl LoginCredentials {
    /// Errors: [`ApiError::BadRequest`] when a field is missing or empty;
    /// [`ApiError::InvalidCredentials`], without touching the database, for a name or a password
    /// no account can have (too long, or a NUL in the name).
    pub fn parse(body: LoginRequest) -> Result<Self, ApiError> {
        let missing = || ApiError::BadRequest("Missing credentials: username and password are required".into());
        let (Some(username), Some(password)) = (body.username, body.password) else { return Err(missing()) };
        if username.is_empty() || password.is_empty() {
            return Err(missing());
        }
        let name_fits = !username.contains('\0') && username.chars().count() <= MAX_USERNAME_CHARS;
        if !name_fits || password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::InvalidCredentials);
        }
        Ok(Self { username: LoginName(username), password: Secret::new(password) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn bad_request<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    fn register(body: Value) -> Result<Registration, ApiError> {
        Registration::parse(serde_json::from_value(body).unwrap())
    }

    fn login(username: &str, password: &str) -> Result<LoginCredentials, ApiError> {
        LoginCredentials::parse(serde_json::from_value(json!({"username": username, "password": password})).unwrap())
    }

    #[test]
    fn username_length_bounds_count_characters() {
        let name = |n: usize| Username::parse("a".repeat(n));
        assert!(name(MIN_USERNAME_CHARS - 1).is_err());
        assert!(name(MIN_USERNAME_CHARS).is_ok());
        assert!(name(MAX_USERNAME_CHARS).is_ok());
        assert!(name(MAX_USERNAME_CHARS + 1).is_err());
        assert_eq!(
            bad_request(name(2)),
            "username must be 3 to 50 characters: letters, digits, '_', '.' or '-'",
            "the message the contract has always given"
        );
    }

    #[test]
    fn username_charset_is_ascii_letters_digits_and_three_marks() {
        for good in ["testuser", "a.b-c_d", "ABC", "007", "___", "a-1.B_2"] {
            assert_eq!(Username::parse(good.into()).unwrap().as_str(), good);
        }
        // Three characters but not ASCII: the rule is about characters, and these are not allowed ones.
        for bad in ["white space", "ünï", "abc!", "a@b", "tab\tx", "abc\u{0}", "ab\u{200b}c", "ＡＢＣ"] {
            assert!(Username::parse(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn email_rules() {
        for good in ["test@example.com", "a@b.co", "first.last+tag@sub.example.org", "ü@exämple.com"] {
            assert_eq!(Email::parse(good.into()).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a@.com",
            "a@b.com.",
            "a\u{0}@b.com",
        ] {
            assert!(Email::parse(bad.into()).is_err(), "{bad:?}");
        }
        assert_eq!(bad_request(Email::parse("x".into())), "email must be a valid address of at most 100 characters");
    }

    #[test]
    fn email_length_counts_characters_not_bytes() {
        let domain = "@example.com";
        let local = |n: usize| "é".repeat(n - domain.len());
        assert!(Email::parse(local(MAX_EMAIL_CHARS) + domain).is_ok(), "100 characters, 188 bytes");
        assert!(Email::parse(local(MAX_EMAIL_CHARS + 1) + domain).is_err());
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        assert!(Password::parse("a".repeat(MIN_PASSWORD_CHARS - 1)).is_err());
        assert!(Password::parse("é".repeat(MIN_PASSWORD_CHARS - 1)).is_err(), "14 bytes are still 7 characters");
        assert!(Password::parse("a".repeat(MIN_PASSWORD_CHARS)).is_ok());
        assert!(Password::parse("é".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert!(Password::parse("é".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert_eq!(bad_request(Password::parse("short".into())), "password must be 8 to 128 characters");
        let long = "p".repeat(MAX_PASSWORD_CHARS - 1) + "q";
        assert_eq!(Password::parse(long.clone()).unwrap().expose(), long, "kept whole, never truncated");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let r = register(json!({"username": "abc", "email": "a@example.com", "password": "hunter2-secret"})).unwrap();
        assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
        let l = login("abc", "hunter2-secret").unwrap();
        assert!(!format!("{l:?}").contains("hunter2"), "{l:?}");
    }

    #[test]
    fn registration_reports_a_missing_field_before_a_malformed_one() {
        let cases = [
            (json!({"email": "a@example.com", "password": "SecurePass123!"}), "username is required"),
            (json!({"username": "", "email": "a@example.com", "password": "SecurePass123!"}), "username is required"),
            (json!({"username": "ab", "password": "SecurePass123!"}), "email is required"),
            (json!({"username": "ab", "email": "bad"}), "password is required"),
            (json!({"username": "a\u{0}", "email": "bad", "password": "x"}), "username must not contain NUL"),
            (json!({"username": "ab", "email": "bad", "password": "x\u{0}"}), "password must not contain NUL"),
            (json!({"username": "ab", "email": "bad", "password": "x"}), "username must be"),
            (json!({"username": "abc", "email": "bad", "password": "x"}), "email must be"),
            (json!({"username": "abc", "email": "a@example.com", "password": "x"}), "password must be"),
        ];
        for (body, expected) in cases {
            let message = bad_request(register(body.clone()));
            assert!(message.starts_with(expected), "{body}: {message}");
        }
        let r = register(json!({"username": "abc", "email": "a@example.com", "password": "SecurePass123!"})).unwrap();
        assert_eq!(
            (r.username.as_str(), r.email.as_str(), r.password.expose()),
            ("abc", "a@example.com", "SecurePass123!")
        );
    }

    #[test]
    fn login_refuses_impossible_credentials_without_a_lookup() {
        assert!(bad_request(login("", "pw")).starts_with("Missing credentials"));
        assert!(bad_request(login("abc", "")).starts_with("Missing credentials"));
        let missing = LoginCredentials::parse(serde_json::from_value(json!({"username": "abc"})).unwrap());
        assert!(bad_request(missing).starts_with("Missing credentials"));

        let name = |n: usize| "é".repeat(n);
        assert!(login(&name(MAX_USERNAME_CHARS), "pw").is_ok(), "50 characters (100 bytes) may be looked up");
        assert!(matches!(login(&name(MAX_USERNAME_CHARS + 1), "pw"), Err(ApiError::InvalidCredentials)));
        assert!(matches!(login("a\u{0}b", "pw"), Err(ApiError::InvalidCredentials)));
        assert!(login("abc", &name(MAX_PASSWORD_CHARS)).is_ok());
        assert!(matches!(login("abc", &name(MAX_PASSWORD_CHARS + 1)), Err(ApiError::InvalidCredentials)));
        // Names the registration rule refuses are still looked up (and counted) like unknown ones.
        for allowed in ["ab", "white space", "ünïcode"] {
            assert_eq!(login(allowed, "pw").unwrap().username.as_str(), allowed);
        }
    }

    #[test]
    fn login_names_compare_regardless_of_case() {
        let key = |n: &str| login(n, "pw").unwrap().username.key();
        assert_eq!(key("Alice"), key("aLICE"));
        assert_eq!(key("Alice").as_str(), "alice");
        assert_ne!(key("alice"), key("alice2"));
        assert_eq!(key("ÉCOLE").as_str(), "école");
    }

    /// A registrable name's key is what the database's generated column computes for it
    /// (`lower(username COLLATE "C")`, ASCII lower case): checked for every allowed character.
    #[test]
    fn registrable_names_have_their_ascii_lower_case_as_key() {
        let allowed: String =
            (0u8..128).map(char::from).filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).collect();
        for chunk in allowed.as_bytes().chunks(MAX_USERNAME_CHARS) {
            let name = Username::parse(String::from_utf8(chunk.to_vec()).unwrap()).unwrap();
            assert_eq!(name.key().as_str(), name.as_str().to_ascii_lowercase());
        }
    }

    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        let schema = serde_json::to_value(<RegisterRequest as utoipa::PartialSchema>::schema()).unwrap();
        let doc = |field: &str| schema["properties"][field]["description"].as_str().unwrap_or_default().to_owned();
        assert!(doc("username").starts_with(&format!("{MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} characters")));
        assert!(doc("email").starts_with(&format!("Up to {MAX_EMAIL_CHARS} characters")));
        assert!(doc("password").starts_with(&format!("{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")));
    }
}
