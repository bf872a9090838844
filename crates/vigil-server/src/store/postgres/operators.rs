//! Users, API tokens and console sessions.

use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::response::append_audit;
use crate::store::operators::{
    ApiToken, NameQuery, NewApiToken, NewOperatorSession, NewUser, OperatorRole, OperatorSession,
    OperatorStore, User,
};
use crate::store::{AuditEntry, StoreError};

/// A session's last use is written at most this often (ms), so reads stay reads.
const TOUCH_EVERY_MS: i64 = 30_000;

fn role_of(r: &PgRow, column: &str) -> Result<OperatorRole, StoreError> {
    let s: &str = r.try_get(column)?;
    s.parse()
        .map_err(|e: String| StoreError::Db(sqlx::Error::Decode(e.into())))
}

fn user_from(r: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        name: r.try_get("name")?,
        role: role_of(r, "role")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn token_from(r: &PgRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        user: r.try_get("user_name")?,
        role: role_of(r, "role")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn conflict(
    result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
    what: &str,
) -> Result<u64, StoreError> {
    match result {
        Ok(done) => Ok(done.rows_affected()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("{what} already exists")))
        }
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::Conflict(format!("{what}: no such user")))
        }
        Err(e) => Err(e.into()),
    }
}

fn audit(actor: &str, action: &str, target: String, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        action: action.into(),
        target,
        detail,
    }
}

#[async_trait]
impl OperatorStore for PgStore {
    async fn create_first_user(&self, u: &NewUser, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Servers starting together must not each create a first user.
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(&u.name)
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let entry = audit(
            "system",
            "user.created",
            format!("user:{}", u.name),
            json!({ "role": u.role, "first_admin": true }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_user(&self, u: &NewUser, actor: &str, now: i64) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.name)
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        conflict(done, &format!("a user named {:?}", u.name))?;
        let entry = audit(
            actor,
            "user.created",
            format!("user:{}", u.name),
            json!({ "role": u.role }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(User {
            name: u.name.clone(),
            role: u.role,
            created_at: now,
            updated_at: now,
        })
    }

    async fn user_credentials(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    async fn users(&self, q: &NameQuery) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE name > $1 AND ($2 IS NULL OR role = $3)
             ORDER BY name LIMIT $4",
        )
        .bind(q.after.as_deref().unwrap_or(""))
        .bind(q.role.map(OperatorRole::as_str))
        .bind(q.role.map(OperatorRole::as_str))
        .bind(super::limit(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from).collect()
    }

    async fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3")
                .bind(password_hash)
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let ended = sqlx::query("DELETE FROM operator_sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let entry = audit(
            actor,
            "user.password_changed",
            format!("user:{name}"),
            json!({ "sessions_ended": ended }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_role(
        &self,
        name: &str,
        role: OperatorRole,
        actor: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_roles(&mut tx).await?;
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut user = user_from(&row)?;
        if user.role == role {
            return Ok(Some(user));
        }
        if user.role == OperatorRole::Admin {
            not_the_last_admin(&mut tx, name, "make another user admin first").await?;
        }
        sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE name = $3")
            .bind(role.as_str())
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let entry = audit(
            actor,
            "user.role_changed",
            format!("user:{name}"),
            json!({ "from": user.role, "to": role }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        user.role = role;
        user.updated_at = now;
        Ok(Some(user))
    }

    async fn delete_user(&self, name: &str, actor: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_roles(&mut tx).await?;
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(role) = role else {
            return Ok(false);
        };
        if role == "admin" {
            not_the_last_admin(&mut tx, name, "create another admin first").await?;
        }
        sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let entry = audit(
            actor,
            "user.removed",
            format!("user:{name}"),
            json!({ "role": role }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_api_token(
        &self,
        t: &NewApiToken,
        actor: &str,
        now: i64,
    ) -> Result<ApiToken, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO api_tokens (id, name, user_name, role, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&t.name)
        .bind(&t.user)
        .bind(t.role.as_str())
        .bind(&t.token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await;
        conflict(done, &format!("a token named {:?}", t.name))?;
        let entry = audit(
            actor,
            "token.created",
            format!("token:{}", t.name),
            json!({ "id": id, "user": t.user, "role": t.role }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(ApiToken {
            id,
            name: t.name.clone(),
            user: t.user.clone(),
            role: t.role,
            created_at: now,
            last_used_at: None,
        })
    }

    async fn api_tokens(&self, q: &NameQuery) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM api_tokens WHERE name > $1 AND ($2 IS NULL OR user_name = $3)
               AND ($4 IS NULL OR role = $5)
             ORDER BY name LIMIT $6",
        )
        .bind(q.after.as_deref().unwrap_or(""))
        .bind(q.user.as_deref())
        .bind(q.user.as_deref())
        .bind(q.role.map(OperatorRole::as_str))
        .bind(q.role.map(OperatorRole::as_str))
        .bind(super::limit(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from).collect()
    }

    async fn api_token(&self, id_or_name: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1 OR name = $2")
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn revoke_api_token(&self, id: &str, actor: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("DELETE FROM api_tokens WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let t = token_from(&row)?;
        let entry = audit(
            actor,
            "token.revoked",
            format!("token:{}", t.name),
            json!({ "id": t.id, "user": t.user }),
        );
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn identify_api_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(ApiToken, User)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.*, u.role AS user_role, u.created_at AS user_created_at,
                    u.updated_at AS user_updated_at
             FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let mut token = token_from(&r)?;
        let user = User {
            name: token.user.clone(),
            role: role_of(&r, "user_role")?,
            created_at: r.try_get("user_created_at")?,
            updated_at: r.try_get("user_updated_at")?,
        };
        token.role = token.role.min(user.role);
        if token.last_used_at.is_none_or(|t| now - t >= 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((token, user)))
    }

    async fn create_session(&self, s: &NewOperatorSession, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Expired sessions go whenever a new one comes.
        sqlx::query("DELETE FROM operator_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO operator_sessions (id_hash, user_name, csrf_token, created_at,
                                            last_seen, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id_hash)
        .bind(&s.user)
        .bind(&s.csrf_token)
        .bind(now)
        .bind(now)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> Result<Option<OperatorSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.csrf_token, s.created_at AS session_created_at, s.last_seen,
                    s.expires_at, u.*
             FROM operator_sessions s JOIN users u ON u.name = s.user_name WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let last_seen: i64 = r.try_get("last_seen")?;
        let expires_at: i64 = r.try_get("expires_at")?;
        if now >= expires_at || now - last_seen > idle_ms {
            self.delete_session(id_hash).await?;
            return Ok(None);
        }
        if now - last_seen >= TOUCH_EVERY_MS {
            sqlx::query("UPDATE operator_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(OperatorSession {
            id_hash: r.try_get("id_hash")?,
            user: user_from(&r)?,
            csrf_token: r.try_get("csrf_token")?,
            created_at: r.try_get("session_created_at")?,
            expires_at,
        }))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM operator_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// `Conflict` when `name`, an admin, is the only one left: a change that takes its admin role
/// away would leave nobody to manage operators. `remedy` says what to do instead.
async fn not_the_last_admin(
    tx: &mut sqlx::PgConnection,
    name: &str,
    remedy: &str,
) -> Result<(), StoreError> {
    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(&mut *tx)
        .await?;
    if admins <= 1 {
        return Err(StoreError::Conflict(format!(
            "{name} is the last admin; {remedy}"
        )));
    }
    Ok(())
}

/// Serialises changes that take an admin role away until the transaction ends: two
/// concurrent demotions cannot each count the other admin and leave none.
async fn lock_roles(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(7307418, 2)")
        .execute(&mut *tx)
        .await?;
    Ok(())
}
