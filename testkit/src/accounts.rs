//! Test users and tokens: one registration body, one register, one log-in, one minted token.

use axum::http::{Method, StatusCode};
use platform::Secret;
use platform::keyring::{Claims, Keyring};
use serde_json::{Value, json};

use crate::api::Api;

/// Every test user's password (the guide's).
pub const PASSWORD: &str = "SecurePass123!";

/// The guide's registration body for `username`: `<username>@example.com`, [`PASSWORD`].
pub fn registration(username: &str) -> Value {
    json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD})
}

/// The log-in body for `username` with [`PASSWORD`].
pub fn credentials(username: &str) -> Value {
    json!({"username": username, "password": PASSWORD})
}

/// `username` plus 8 random hex digits: a name no other test uses on a shared database.
pub fn unique(username: &str) -> String {
    format!("{username}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Registers `username` (`POST /auth/register`, asserting 201) and returns the `user` object.
pub async fn register(api: &impl Api, username: &str) -> Value {
    let r = api.send(Method::POST, "/auth/register", &[], Some(registration(username))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.raw));
    r.json["user"].clone()
}

/// Logs `username` in (`POST /auth/login`, asserting 200) and returns the token.
pub async fn login(api: &impl Api, username: &str) -> String {
    let r = api.send(Method::POST, "/auth/login", &[], Some(credentials(username))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.raw));
    r.json["token"].as_str().expect("a token").to_owned()
}

/// Registers a fresh user named after `name` ([`unique`]) and logs it in: (token, user id).
pub async fn sign_up(api: &impl Api, name: &str) -> (String, i64) {
    let username = unique(name);
    let user = register(api, &username).await;
    let token = login(api, &username).await;
    (token, user["id"].as_i64().expect("a user id"))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A token signed with `secret` for `user_id` (username `user<id>`), living `lifetime` seconds
/// from now.
pub fn mint(secret: &str, user_id: i64, lifetime: i64) -> String {
    let ring = Keyring::new(&Secret::new(secret), None).unwrap();
    ring.issue(&Claims::new(user_id, &format!("user{user_id}"), "minted@example.com", unix_now(), lifetime)).unwrap()
}
