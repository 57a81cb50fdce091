use sqlx::Row;

use super::{conflict_on_unique, Result, StoreError};
use crate::clock::Millis;
use crate::db::Db;
use crate::secret::new_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Support,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Support => "support",
        }
    }

    fn parse(s: &str) -> Role {
        if s == "support" {
            Role::Support
        } else {
            Role::User
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: Millis,
    pub disabled: bool,
}

pub const MIN_PASSWORD_LEN: usize = 8;

/// Emails are compared case-insensitively: stored trimmed and lower-cased.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(StoreError::Invalid(format!(
            "{email:?} is not an email address"
        )))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(StoreError::Invalid("the password is too long".into()));
    }
    Ok(())
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?),
        created_at: row.try_get("created_at")?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

pub async fn add(
    db: &Db,
    email: &str,
    name: Option<&str>,
    role: Role,
    password: &str,
    now: Millis,
) -> Result<User> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))?;
    let user = User {
        id: new_id(),
        email,
        name,
        role,
        created_at: now,
        disabled: false,
    };
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(role.as_str())
    .bind(&hash)
    .bind(now)
    .execute(db.write())
    .await
    .map_err(|e| conflict_on_unique(e, format!("a user with email {} already exists", user.email)))?;
    Ok(user)
}

pub async fn set_password(db: &Db, email: &str, password: &str) -> Result<()> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))?;
    let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2")
        .bind(&hash)
        .bind(&email)
        .execute(db.write())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("no user with email {email}")));
    }
    Ok(())
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT id, email, name, role, created_at, disabled_at FROM users WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(db.read())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn find(db: &Db, id: &str) -> Result<Option<User>> {
    let row = sqlx::query(
        "SELECT id, email, name, role, created_at, disabled_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<User>> {
    let rows = sqlx::query(
        "SELECT id, email, name, role, created_at, disabled_at FROM users ORDER BY email",
    )
    .fetch_all(db.read())
    .await?;
    rows.iter().map(user_from_row).collect()
}

/// Checks a password; `None` for an unknown, disabled or wrong one, in the same time for each.
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<Option<User>> {
    let row = match normalize_email(email) {
        Ok(email) => sqlx::query(
            "SELECT id, email, name, role, created_at, disabled_at, password_hash FROM users WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(db.read())
        .await?,
        Err(_) => None,
    };
    let found = match &row {
        Some(row) => Some((
            user_from_row(row)?,
            row.try_get::<String, _>("password_hash")?,
        )),
        None => None,
    };
    let password = password.to_string();
    tokio::task::spawn_blocking(move || match found {
        Some((user, hash)) => {
            let ok = crate::crypto::verify_password(&password, &hash);
            (ok && !user.disabled).then_some(user)
        }
        None => {
            crate::crypto::burn_password_check(&password);
            None
        }
    })
    .await
    .map_err(|e| StoreError::Invalid(format!("password check failed: {e}")))
}

/// An account as support staff find it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    #[serde(with = "crate::http::api::time_format")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    pub disabled: bool,
    /// Sessions not revoked (some may have expired).
    pub live_sessions: i64,
}

const SUMMARY: &str = "SELECT u.id, u.email, u.name, u.role, u.created_at, u.disabled_at, \
     (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL) AS live_sessions \
     FROM users u";

/// One account by its id.
pub async fn summary(db: &Db, id: &str) -> Result<Option<UserSummary>> {
    let row = sqlx::query(&format!("{SUMMARY} WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(db.read())
        .await?;
    row.as_ref().map(summary_from_row).transpose()
}

fn summary_from_row(r: &sqlx::any::AnyRow) -> Result<UserSummary> {
    Ok(UserSummary {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: Role::parse(&r.try_get::<String, _>("role")?),
        created_at: r.try_get("created_at")?,
        disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        live_sessions: r.try_get("live_sessions")?,
    })
}

/// Accounts whose email contains `q` (case-insensitive) or whose id is `q`, by email.
pub async fn search(db: &Db, q: &str, limit: i64, offset: i64) -> Result<Vec<UserSummary>> {
    let needle = q.trim().to_lowercase();
    let escaped: String = needle
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE u.email LIKE $1 ESCAPE '\\' OR u.id = $2 ORDER BY u.email LIMIT $3 OFFSET $4"
    ))
    .bind(format!("%{escaped}%"))
    .bind(q.trim())
    .bind(limit)
    .bind(offset)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(summary_from_row).collect()
}
