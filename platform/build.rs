//! Rebuilds this crate when a migration is added or changed: `sqlx::migrate!` embeds
//! `../migrations` at compile time, and cargo does not watch files outside the crate by itself
//! (what `sqlx migrate build-script` generates; without it a new migration is silently missing
//! from an incremental build's `MIGRATOR`).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
