//! The case-insensitive username migration on a database that already holds names differing
//! only in case: the schema before it is applied, accounts inserted, then the migrator (and
//! auth-svc itself) run as on a deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::Duration;

use auth_svc::password::Hasher;
use platform::db::MIGRATOR;
use serde_json::{Value, json};
use sqlx::migrate::Migrate;
use testkit::TestDatabase;
use testkit::free_port;
use testkit::launch::{AuthSvcSettings, KeyringSource, ServiceSettings, loopback};
use testkit::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_auth-svc");
const CASE_INSENSITIVE: i64 = 20261129000001;
const USERNAME_KEY: i64 = 20261203000001;
const API_KEY_REVOCATIONS: i64 = 20261203000010;

/// A database with the schema as it was before migration `version`.
async fn database_before(version: i64) -> TestDatabase {
    let db = TestDatabase::empty().await;
    let mut conn = db.pool.acquire().await.unwrap();
    conn.ensure_migrations_table().await.unwrap();
    for migration in MIGRATOR.iter().filter(|m| m.version < version) {
        conn.apply(migration).await.unwrap();
    }
    drop(conn);
    db
}

/// A database with the schema as it was before the case-insensitive migration.
async fn database_before_case_insensitive_names() -> TestDatabase {
    database_before(CASE_INSENSITIVE).await
}

/// Names equal under the username key but stored side by side before it: possible where the
/// database's `lower()` does not fold ASCII as ASCII (a `tr_TR` locale lower-cases `I` to `ı`,
/// so the earlier index on `lower(username)` let `ALICE` and `alice` both in). That locale is
/// not installed here: the earlier index is dropped to store the same rows.
#[tokio::test]
async fn names_equal_under_the_username_key_keep_the_oldest_and_the_others_are_renamed() {
    let db = database_before(USERNAME_KEY).await;
    sqlx::query("DROP INDEX users_username_lower_key").execute(&db.pool).await.unwrap();
    for (id, username, created) in
        [(1, "alice", "2026-01-02"), (2, "ALICE", "2026-01-01"), (3, "Bob", "2026-01-01"), (4, "bob", "2026-01-01")]
    {
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, 'h', $4::date)",
        )
        .bind(id)
        .bind(username)
        .bind(format!("user{id}@example.com"))
        .bind(created)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    // Account 4 was renamed once already (and resolved): its first old name is kept.
    sqlx::query(
        "INSERT INTO username_conflicts (user_id, old_username, new_username, resolved_at)
         VALUES (4, 'BOB', 'bob', now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tasks (user_id, title) VALUES (1, 'kept with its owner')")
        .execute(&db.pool)
        .await
        .unwrap();

    MIGRATOR.run(&db.pool).await.expect("the migration applies to names equal under the key");

    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, username, username_key FROM users ORDER BY id").fetch_all(&db.pool).await.unwrap();
    let rows: Vec<(i64, &str, &str)> = rows.iter().map(|(i, n, k)| (*i, n.as_str(), k.as_str())).collect();
    assert_eq!(rows, [(1, "alice-1", "alice-1"), (2, "ALICE", "alice"), (3, "Bob", "bob"), (4, "bob-4", "bob-4")]);
    let conflicts: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT user_id, old_username, new_username FROM username_conflicts ORDER BY user_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let conflicts: Vec<(i64, &str, &str)> = conflicts.iter().map(|(i, o, n)| (*i, o.as_str(), n.as_str())).collect();
    assert_eq!(conflicts, [(1, "alice", "alice-1"), (4, "BOB", "bob-4")]);
    assert_eq!(auth_svc::username_conflicts::unresolved(&db.pool).await.unwrap(), [1, 4]);
    let owner: i64 = sqlx::query_scalar("SELECT user_id FROM tasks").fetch_one(&db.pool).await.unwrap();
    assert_eq!(owner, 1, "a renamed account keeps its tasks");

    // From now on the key's unique index refuses another spelling.
    let err = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash) OVERRIDING SYSTEM VALUE
                 VALUES (10, 'aLiCe', 'c@example.com', 'x')",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();
    let err = err.as_database_error().unwrap();
    assert_eq!((err.code().as_deref(), err.constraint()), (Some("23505"), Some("users_username_key_key")));
}

/// The API key migrations on a database with live revocations: the enum value is committed
/// before the constraint that uses it (two migrations, since PostgreSQL cannot use a value added
/// in the same transaction), existing entries keep their shape, and the new kind needs its
/// `client_id` and nothing else.
#[tokio::test]
async fn the_api_key_revocation_kind_joins_a_log_that_already_has_entries() {
    let db = database_before(API_KEY_REVOCATIONS).await;
    sqlx::query(
        "INSERT INTO revocations (kind, user_id, jti, issued_before, expires_at)
         VALUES ('token', 1, 'abc', NULL, now() + interval '1 hour'),
                ('user', 1, NULL, 1700000000, now() + interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    MIGRATOR.run(&db.pool).await.expect("the API key migrations apply to a log with entries");

    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind::text FROM revocations ORDER BY seq").fetch_all(&db.pool).await.unwrap();
    assert_eq!(kinds, ["token", "user"]);
    let insert = |kind: &'static str, jti: Option<&'static str>, client_id: Option<&'static str>| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO revocations (kind, user_id, jti, client_id, expires_at)
                 VALUES ($1::revocation_kind, 1, $2, $3, now())",
            )
            .bind(kind)
            .bind(jti)
            .bind(client_id)
            .execute(&pool)
            .await
        }
    };
    insert("api_key", None, Some("tmk_AAAAAAAAAAAAAAAAAAAAAA")).await.expect("an api_key entry");
    for (kind, jti, client_id) in
        [("api_key", None, None), ("api_key", Some("abd"), Some("tmk_x")), ("token", Some("abe"), Some("tmk_x"))]
    {
        let err = insert(kind, jti, client_id).await.unwrap_err();
        let err = err.as_database_error().unwrap();
        assert_eq!(err.constraint(), Some("revocations_shape"), "{kind} {jti:?} {client_id:?}");
    }
}

/// (id, username, created_at, password)
const ACCOUNTS: [(i64, &str, &str, &str); 8] = [
    (1, "alice", "2026-01-02", "password-of-1"),
    (2, "Alice", "2026-01-01", "password-of-2"), // the oldest 'alice': keeps its name
    (3, "ALICE", "2026-01-03", "password-of-3"),
    (4, "alice-1", "2026-01-04", "password-of-4"), // the first name id 1 would get
    (5, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "2026-01-01", "password-of-5"),
    (6, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "2026-01-05", "password-of-6"),
    (7, "Carol", "2026-01-01", "password-of-7"), // same instant as 8: the lower id is older
    (8, "carol", "2026-01-01", "password-of-8"),
];

async fn insert_accounts(db: &TestDatabase) {
    let hasher = Hasher::new(2, Duration::from_secs(30));
    for (id, username, created, password) in ACCOUNTS {
        let hash = hasher.hash(password.to_owned()).await.unwrap();
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5::date)",
        )
        .bind(id)
        .bind(username)
        .bind(format!("user{id}@example.com"))
        .bind(hash)
        .bind(created)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO tasks (user_id, title) VALUES (1, 'kept with its owner')")
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_duplicates_keep_the_oldest_name_and_the_others_are_renamed_and_reported() {
    let db = database_before_case_insensitive_names().await;
    insert_accounts(&db).await;
    MIGRATOR.run(&db.pool).await.expect("the migration applies to case duplicates");

    let names: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM users ORDER BY id").fetch_all(&db.pool).await.unwrap();
    let b48 = "b".repeat(48);
    let expected = [
        (1, "alice-1-1".to_owned()),
        (2, "Alice".to_owned()),
        (3, "ALICE-3".to_owned()),
        (4, "alice-1".to_owned()),
        (5, "B".repeat(50)),
        (6, format!("{b48}-6")),
        (7, "Carol".to_owned()),
        (8, "carol-8".to_owned()),
    ];
    assert_eq!(names, expected);

    let conflicts: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT user_id, old_username, new_username FROM username_conflicts ORDER BY user_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let reported: Vec<(i64, &str, &str)> = conflicts.iter().map(|(i, o, n)| (*i, o.as_str(), n.as_str())).collect();
    assert_eq!(
        reported,
        [
            (1, "alice", "alice-1-1"),
            (3, "ALICE", "ALICE-3"),
            (6, ACCOUNTS[5].1, expected[5].1.as_str()),
            (8, "carol", "carol-8"),
        ]
    );
    assert_eq!(auth_svc::username_conflicts::unresolved(&db.pool).await.unwrap(), [1, 3, 6, 8]);
    let owner: i64 = sqlx::query_scalar("SELECT user_id FROM tasks").fetch_one(&db.pool).await.unwrap();
    assert_eq!(owner, 1, "a renamed account keeps its tasks");

    // From now on the index refuses case duplicates.
    let err = sqlx::query("INSERT INTO users (username, email, password_hash) VALUES ('CAROL', 'c@example.com', 'x')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("23505"));
    // Running the migrator again changes nothing.
    MIGRATOR.run(&db.pool).await.unwrap();
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM username_conflicts").fetch_one(&db.pool).await.unwrap();
    assert_eq!(again, 4);

    sqlx::query("UPDATE username_conflicts SET resolved_at = now() WHERE user_id IN (1, 3)")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(auth_svc::username_conflicts::unresolved(&db.pool).await.unwrap(), [6, 8]);
}

async fn login(port: u16, username: &str, password: &str) -> (u16, Value) {
    let r = testkit::client()
        .post(format!("http://127.0.0.1:{port}/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_svc_starts_on_case_duplicates_warns_with_the_count_and_serves_the_renamed_accounts() {
    let db = database_before_case_insensitive_names().await;
    insert_accounts(&db).await;
    let log = std::env::temp_dir().join(format!("auth-svc-migration-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let port = free_port().unwrap();
    let settings = AuthSvcSettings::new(
        ServiceSettings::new(db.url.clone(), loopback(port)),
        KeyringSource::secret("migration-test-secret-0123456789-abcdef"),
    );
    let mut svc = settings
        .launch("auth-svc", Path::new(BIN))
        .output(Output::File(log.clone()))
        .start(Duration::from_secs(60))
        .await
        .unwrap();

    // The log is written by a background thread (tracing-appender): the line may land a
    // moment after the service reports ready.
    let warning = testkit::wait::until_some("auth-svc's username_conflicts warning", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = text.lines().find(|l| l.contains("username_conflicts")).map(str::to_owned);
        async move { line }
    })
    .await;
    assert!(warning.contains("WARN") && warning.contains("renamed_accounts=4"), "{warning}");
    assert!(warning.contains("[1, 3, 6, 8]"), "the ids are named: {warning}");
    assert!(!warning.contains("example.com") && !warning.contains("alice"), "no names or emails: {warning}");

    // The oldest account answers to every spelling of its name; a renamed one to its new name.
    let (status, body) = login(port, "ALICE", "password-of-2").await;
    assert_eq!((status, body["user"]["id"].as_i64()), (200, Some(2)), "{body}");
    let (status, body) = login(port, "alice-1-1", "password-of-1").await;
    assert_eq!((status, body["user"]["id"].as_i64()), (200, Some(1)), "{body}");
    let (status, _) = login(port, "alice", "password-of-1").await;
    assert_eq!(status, 401, "the old spelling is now the oldest account's name");

    svc.stop(Duration::from_secs(10)).unwrap();
    let _ = std::fs::remove_file(&log);
}
