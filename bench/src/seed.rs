//! Seeding: users (one registered through auth-svc, the rest copies of its row so that seeding
//! costs one argon2 hash, not hundreds), a real token for each from `/auth/login`, and tasks
//! created through task-svc's API.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub const PASSWORD: &str = "bench-password-123";

/// A seeded user: its id, username, a token from `/auth/login` and its tasks' ids.
pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
    pub tasks: Vec<i64>,
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?)
}

fn username(i: usize) -> String {
    format!("bench{i:05}")
}

/// Seeds `users` users with `tasks_per_user` tasks each: returns them with a real token, sorted
/// by id. Errors: a registration, login or task creation was refused, or the database failed.
pub async fn seed(
    auth_url: &str,
    task_url: &str,
    database_url: &str,
    users: usize,
    tasks_per_user: usize,
) -> Result<Vec<User>> {
    let http = client()?;
    let rows = users_rows(&http, auth_url, database_url, users).await?;
    let mut seeded = login_all(&http, auth_url, rows).await?;
    create_tasks(&http, task_url, &mut seeded, tasks_per_user).await?;
    Ok(seeded)
}

/// Registers the first user through auth-svc and copies its row (password hash included) for
/// the others; returns every user's (id, username).
async fn users_rows(
    http: &reqwest::Client,
    auth_url: &str,
    database_url: &str,
    users: usize,
) -> Result<Vec<(i64, String)>> {
    let first = username(0);
    let r = http
        .post(format!("{auth_url}/auth/register"))
        .json(&json!({"username": first, "email": format!("{first}@example.com"), "password": PASSWORD}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("register {first}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let pool = sqlx::PgPool::connect(database_url).await?;
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = $1").bind(&first).fetch_one(&pool).await?;
    sqlx::query(
        "INSERT INTO users (username, email, password_hash) \
         SELECT 'bench' || lpad(g::text, 5, '0'), 'bench' || lpad(g::text, 5, '0') || '@example.com', $1 \
         FROM generate_series(1, $2::int) AS g",
    )
    .bind(&hash)
    .bind(users.saturating_sub(1) as i32)
    .execute(&pool)
    .await?;
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE username LIKE 'bench%' ORDER BY username")
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    Ok(rows)
}

/// Real tokens: one login per user (a hash each, at most as many at once as auth-svc hashes).
async fn login_all(http: &reqwest::Client, auth_url: &str, rows: Vec<(i64, String)>) -> Result<Vec<User>> {
    let permits = Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));
    let mut logins = JoinSet::new();
    let count = rows.len();
    for (id, name) in rows {
        let (http, permits, url) = (http.clone(), permits.clone(), format!("{auth_url}/auth/login"));
        logins.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let r = http.post(url).json(&json!({"username": name, "password": PASSWORD})).send().await?;
            if r.status() != 200 {
                bail!("login {name}: {}", r.status());
            }
            let body: Value = r.json().await?;
            let token = body["token"].as_str().context("login answer has no token")?.to_owned();
            anyhow::Ok(User { id, username: name, token, tasks: Vec::new() })
        });
    }
    let mut seeded = Vec::with_capacity(count);
    while let Some(user) = logins.join_next().await {
        seeded.push(user??);
    }
    seeded.sort_by_key(|u| u.id);
    Ok(seeded)
}

/// Tasks through task-svc's API, as the gateway would forward them; their ids go to each user.
async fn create_tasks(
    http: &reqwest::Client,
    task_url: &str,
    seeded: &mut [User],
    tasks_per_user: usize,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(16));
    let mut creates = JoinSet::new();
    for (index, user) in seeded.iter().enumerate() {
        for n in 0..tasks_per_user {
            let (http, permits, url, uid) = (http.clone(), permits.clone(), format!("{task_url}/tasks"), user.id);
            creates.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let priority = ["low", "medium", "high"][n % 3];
                let body = json!({
                    "title": format!("seeded task {n} of user {uid}"),
                    "description": "seeded by the benchmark",
                    "priority": priority,
                    "due_date": "2027-02-01",
                });
                let r = http.post(url).header("x-user-id", uid.to_string()).json(&body).send().await?;
                if r.status() != 201 {
                    bail!("create task: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
                let body: Value = r.json().await?;
                anyhow::Ok((index, body["task"]["id"].as_i64().context("task has no id")?))
            });
        }
    }
    while let Some(created) = creates.join_next().await {
        let (index, id) = created??;
        seeded[index].tasks.push(id);
    }
    Ok(())
}

/// The data files the Lua scripts read: `tasks.txt` ("token user_id task_id" per task) and
/// `users.txt` (one username per line).
pub fn write_data(dir: &Path, users: &[User]) -> Result<()> {
    let mut tasks = String::new();
    let mut names = String::new();
    for u in users {
        for t in &u.tasks {
            tasks.push_str(&format!("{} {} {}\n", u.token, u.id, t));
        }
        names.push_str(&u.username);
        names.push('\n');
    }
    std::fs::write(dir.join("tasks.txt"), tasks)?;
    std::fs::write(dir.join("users.txt"), names)?;
    Ok(())
}
