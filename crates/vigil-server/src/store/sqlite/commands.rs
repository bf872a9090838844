//! The command queue and endpoint risk.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::SqliteStore;
use crate::risk::{self, Risk};
use crate::store::{Command, CompleteOutcome, NewCommand, StoreError};

impl SqliteStore {
    pub(super) async fn enqueue_impl(
        &self,
        c: &NewCommand,
        now: i64,
    ) -> Result<Command, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO commands (id, sensor_id, action, args, state, requested_by, reason,
                                   created_at)
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
        )
        .bind(&id)
        .bind(&c.sensor_id)
        .bind(&c.action)
        .bind(serde_json::to_string(&c.args)?)
        .bind(&c.requested_by)
        .bind(&c.reason)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(Command {
            id,
            sensor_id: c.sensor_id.clone(),
            action: c.action.clone(),
            args: c.args.clone(),
            state: "queued".into(),
            requested_by: c.requested_by.clone(),
            reason: c.reason.clone(),
            created_at: now,
            delivered_at: None,
            completed_at: None,
            result: None,
        })
    }

    pub(super) async fn take_pending_impl(
        &self,
        sensor_id: &str,
        now: i64,
    ) -> Result<Vec<Command>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "UPDATE commands SET state = 'delivered', delivered_at = ?
             WHERE sensor_id = ? AND state = 'queued' RETURNING *",
        )
        .bind(now)
        .bind(sensor_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<Command> = rows.iter().map(command_from).collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    pub(super) async fn complete_impl(
        &self,
        sensor_id: &str,
        id: &str,
        succeeded: bool,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<CompleteOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM commands WHERE id = ? AND sensor_id = ?")
                .bind(id)
                .bind(sensor_id)
                .fetch_optional(&mut *tx)
                .await?;
        let outcome = match state.as_deref() {
            None => CompleteOutcome::Unknown,
            Some("succeeded" | "failed" | "expired") => CompleteOutcome::AlreadyCompleted,
            Some(_) => {
                sqlx::query(
                    "UPDATE commands SET state = ?, completed_at = ?, result = ?,
                            delivered_at = COALESCE(delivered_at, ?)
                     WHERE id = ?",
                )
                .bind(if succeeded { "succeeded" } else { "failed" })
                .bind(now)
                .bind(serde_json::to_string(result)?)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                CompleteOutcome::Completed
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn commands_impl(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE sensor_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(sensor_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_from).collect()
    }

    pub(super) async fn risk_impl(&self, sensor_id: &str, now: i64) -> Result<Risk, StoreError> {
        let row = sqlx::query(
            "SELECT score, updated_at, high_water, high_water_at FROM endpoint_risk
             WHERE sensor_id = ?",
        )
        .bind(sensor_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Risk::default(),
            Some(r) => Risk {
                score: risk::decayed(r.try_get("score")?, r.try_get("updated_at")?, now),
                high_water: r.try_get("high_water")?,
                high_water_at: r.try_get("high_water_at")?,
            },
        })
    }
}

/// Adds `added` risk to an endpoint inside a findings transaction.
pub(super) async fn raise_risk(
    tx: &mut Transaction<'_, Sqlite>,
    sensor_id: &str,
    added: f64,
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT score, updated_at, high_water, high_water_at FROM endpoint_risk
         WHERE sensor_id = ?",
    )
    .bind(sensor_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (score, hw, hw_at) = match row {
        None => (0.0, 0.0, 0),
        Some(r) => (
            risk::decayed(r.try_get("score")?, r.try_get("updated_at")?, now),
            r.try_get::<f64, _>("high_water")?,
            r.try_get::<i64, _>("high_water_at")?,
        ),
    };
    let score = (score + added).min(risk::CAP);
    let (hw, hw_at) = if score > hw {
        (score, now)
    } else {
        (hw, hw_at)
    };
    sqlx::query(
        "INSERT INTO endpoint_risk (sensor_id, score, updated_at, high_water, high_water_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (sensor_id) DO UPDATE SET score = excluded.score,
            updated_at = excluded.updated_at, high_water = excluded.high_water,
            high_water_at = excluded.high_water_at",
    )
    .bind(sensor_id)
    .bind(score)
    .bind(now)
    .bind(hw)
    .bind(hw_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn command_from(r: &SqliteRow) -> Result<Command, StoreError> {
    Ok(Command {
        id: r.try_get("id")?,
        sensor_id: r.try_get("sensor_id")?,
        action: r.try_get("action")?,
        args: serde_json::from_str(r.try_get::<&str, _>("args")?)?,
        state: r.try_get("state")?,
        requested_by: r.try_get("requested_by")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
        completed_at: r.try_get("completed_at")?,
        result: r
            .try_get::<Option<&str>, _>("result")?
            .map(serde_json::from_str)
            .transpose()?,
    })
}
