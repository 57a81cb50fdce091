use sqlx::Row;

use serde_json::json;

use super::audit::{self, Actor};
use super::{conflict_on_unique, Origin, Result, StoreError};
use crate::clock::Millis;
use crate::db::Db;
use crate::secret::new_id;

pub use latchkey_proto::{Role, UserSummary};
use latchkey_proto::{Timestamp, UserId};

/// A stored role; one this version does not know grants nothing more than `user`.
fn role(row: &sqlx::any::AnyRow) -> Result<Role> {
    Ok(row
        .try_get::<String, _>("role")?
        .parse()
        .unwrap_or(Role::User))
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
        role: role(row)?,
        created_at: row.try_get("created_at")?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

/// Creates an account, and its audit record, in one transaction.
pub async fn add(
    db: &Db,
    email: &str,
    name: Option<&str>,
    role: Role,
    password: &str,
    by: Actor<'_>,
    now: Millis,
) -> Result<User> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    if name.chars().any(char::is_control) || name.chars().count() > 200 {
        return Err(StoreError::Invalid(
            "a name is at most 200 characters of plain text".into(),
        ));
    }
    let hash = hash(password).await?;
    let user = User {
        id: new_id(),
        email,
        name,
        role,
        created_at: now,
        disabled: false,
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(role.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, format!("a user with email {} already exists", user.email)))?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: "user.add",
            target_user_id: Some(&user.id),
            target_session_id: None,
            reason: None,
            origin: &Origin::default(),
            details: json!({ "email": user.email, "role": role.as_str() }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

async fn hash(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))
}

/// Gives an account a new password, audited.
pub async fn set_password(
    db: &Db,
    email: &str,
    password: &str,
    by: Actor<'_>,
    now: Millis,
) -> Result<()> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let hash = hash(password).await?;
    let mut tx = db.begin_write().await?;
    let row = sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2 RETURNING id")
        .bind(&hash)
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("no user with email {email}")));
    };
    let id: String = row.try_get("id")?;
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: "user.password",
            target_user_id: Some(&id),
            target_session_id: None,
            reason: None,
            origin: &Origin::default(),
            details: json!({ "email": email }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Disables an account (every session of it revoked in the same transaction, so a disabled
/// account never has a live session and no refresh of it can succeed) or enables it again
/// (its sessions stay revoked: the person signs in anew). The sessions revoked.
pub async fn set_disabled(
    db: &Db,
    email: &str,
    disabled: bool,
    by: Actor<'_>,
    now: Millis,
) -> Result<Vec<String>> {
    let email = normalize_email(email)?;
    let mut tx = db.begin_write().await?;
    // The account's row first: a code redemption takes it too (see `codes::redeem_code`), so
    // no sign-in can slip in between this and the revocations below.
    let row = sqlx::query(
        "UPDATE users SET disabled_at = CASE WHEN $1 = 1 THEN COALESCE(disabled_at, $2) ELSE NULL END \
         WHERE email = $3 RETURNING id",
    )
    .bind(i64::from(disabled))
    .bind(now)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("no user with email {email}")));
    };
    let id: String = row.try_get("id")?;
    let origin = Origin::default();
    let revoked = if disabled {
        super::sessions::revoke_all_in(
            &mut tx,
            &id,
            None,
            by,
            "account_disabled",
            &origin,
            now,
            super::events::Audit::Covered,
        )
        .await?
    } else {
        Vec::new()
    };
    audit::append(
        &mut tx,
        audit::Entry {
            actor: by,
            action: if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            target_user_id: Some(&id),
            target_session_id: None,
            reason: None,
            origin: &origin,
            details: json!({ "email": email, "revoked_sessions": revoked }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
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
        id: UserId::from(r.try_get::<String, _>("id")?),
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: role(r)?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
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
