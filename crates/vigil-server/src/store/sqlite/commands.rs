//! The command queue and endpoint risk.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::SqliteStore;
use crate::risk::{self, Risk};
use serde_json::json;

use crate::store::{
    AuditEntry, Command, CommandTransition, CompleteOutcome, NewCommand, StoreError,
};

/// Results larger than this (serialized) are audited by size only.
const AUDITED_RESULT_BYTES: usize = 4096;

impl SqliteStore {
    pub(super) async fn enqueue_impl(
        &self,
        c: &NewCommand,
        now: i64,
    ) -> Result<Command, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let backend = if c.backend.is_empty() {
            "agent"
        } else {
            c.backend.as_str()
        };
        let expires_at = c.ttl_ms.map(|ttl| now.saturating_add(ttl));
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO commands (id, sensor_id, action, args, state, requested_by, reason,
                                   created_at, expires_at, backend)
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&c.sensor_id)
        .bind(&c.action)
        .bind(serde_json::to_string(&c.args)?)
        .bind(&c.requested_by)
        .bind(&c.reason)
        .bind(now)
        .bind(expires_at)
        .bind(backend)
        .execute(&mut *tx)
        .await?;
        transition(&mut tx, &id, "queued", now, None).await?;
        if let Some(requested) = match c.action.as_str() {
            "isolate" => Some(true),
            "release" => Some(false),
            _ => None,
        } {
            sqlx::query(
                "INSERT INTO endpoint_controls (sensor_id, isolation_requested, updated_at)
                 VALUES (?, ?, ?)
                 ON CONFLICT (sensor_id) DO UPDATE SET
                    isolation_requested = excluded.isolation_requested,
                    updated_at = excluded.updated_at",
            )
            .bind(&c.sensor_id)
            .bind(requested)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let entry = AuditEntry {
            actor: c.requested_by.clone(),
            action: "command.queued".into(),
            target: format!("endpoint:{}", c.sensor_id),
            detail: json!({
                "command_id": id, "action": c.action, "args": c.args, "reason": c.reason,
                "backend": backend,
            }),
        };
        super::response::append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
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
            expires_at,
            backend: backend.to_owned(),
        })
    }

    pub(super) async fn take_pending_impl(
        &self,
        sensor_id: &str,
        redeliver: bool,
        now: i64,
    ) -> Result<Vec<Command>, StoreError> {
        // Nearly every session starts with nothing to deliver: a read says so without taking
        // the write lock, which a fleet reconnecting at once (a thousand sessions after a
        // server restart) would otherwise take a thousand times in front of the event writer.
        // A command queued after this read wakes the session, which asks again.
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM commands
                            WHERE sensor_id = ? AND backend = 'agent'
                              AND (state = 'queued' OR (? AND state = 'delivered')))",
        )
        .bind(sensor_id)
        .bind(redeliver)
        .fetch_one(&self.pool)
        .await?;
        if !waiting {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let expired: Vec<String> = sqlx::query_scalar(
            "UPDATE commands SET state = 'expired', completed_at = ?
             WHERE sensor_id = ? AND state = 'queued' AND backend = 'agent'
               AND expires_at IS NOT NULL AND expires_at <= ?
             RETURNING id",
        )
        .bind(now)
        .bind(sensor_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &expired {
            transition(&mut tx, id, "expired", now, None).await?;
            let entry = AuditEntry {
                actor: "system".into(),
                action: "command.expired".into(),
                target: format!("endpoint:{sensor_id}"),
                detail: json!({ "command_id": id }),
            };
            super::response::append_audit(&mut tx, &entry, now).await?;
        }
        let mut rows = sqlx::query(
            "UPDATE commands SET state = 'delivered', delivered_at = ?
             WHERE sensor_id = ? AND state = 'queued' AND backend = 'agent' RETURNING *",
        )
        .bind(now)
        .bind(sensor_id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            transition(&mut tx, r.try_get("id")?, "delivered", now, None).await?;
        }
        if redeliver {
            let again = sqlx::query(
                "SELECT * FROM commands
                 WHERE sensor_id = ? AND state = 'delivered' AND backend = 'agent'
                   AND delivered_at < ?",
            )
            .bind(sensor_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for r in &again {
                transition(&mut tx, r.try_get("id")?, "redelivered", now, None).await?;
            }
            rows.extend(again);
        }
        tx.commit().await?;
        let mut out: Vec<Command> = rows.iter().map(command_from).collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    pub(super) async fn command_impl(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<(Command, Vec<CommandTransition>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM commands WHERE id = ? AND sensor_id = ?")
            .bind(id)
            .bind(sensor_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT state, time, detail FROM command_transitions WHERE command_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let transitions = rows
            .iter()
            .map(|r| {
                Ok(CommandTransition {
                    state: r.try_get("state")?,
                    time: r.try_get("time")?,
                    detail: r
                        .try_get::<Option<&str>, _>("detail")?
                        .map(serde_json::from_str)
                        .transpose()?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some((command_from(&row)?, transitions)))
    }

    pub(super) async fn complete_impl(
        &self,
        sensor_id: &str,
        id: &str,
        succeeded: bool,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<CompleteOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT state, action FROM commands WHERE id = ? AND sensor_id = ?")
            .bind(id)
            .bind(sensor_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(CompleteOutcome::Unknown);
        };
        let (state, action): (String, String) = (row.try_get("state")?, row.try_get("action")?);
        if matches!(state.as_str(), "succeeded" | "failed" | "expired") {
            return Ok(CompleteOutcome::AlreadyCompleted);
        }
        let new_state = if succeeded { "succeeded" } else { "failed" };
        sqlx::query("DELETE FROM result_parts WHERE command_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // A triage package is kept on its own; the command's result (and the audit) say where.
        let stored_result;
        let result = if action == "triage" && succeeded {
            stored_result = store_triage(&mut tx, sensor_id, id, result, now).await?;
            &stored_result
        } else {
            result
        };
        // A large result (a live query's rows) is kept once, with its command; the transition
        // and the audit name its size.
        let text = serde_json::to_string(result)?;
        let audited = if text.len() > AUDITED_RESULT_BYTES {
            json!({ "bytes": text.len() })
        } else {
            result.clone()
        };
        sqlx::query(
            "UPDATE commands SET state = ?, completed_at = ?, result = ?,
                    delivered_at = COALESCE(delivered_at, ?)
             WHERE id = ?",
        )
        .bind(new_state)
        .bind(now)
        .bind(&text)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        transition(&mut tx, id, new_state, now, Some(&audited)).await?;
        let confirmed = match action.as_str() {
            "isolate" if succeeded => Some("isolated"),
            "release" if succeeded => Some("none"),
            _ => None,
        };
        if let Some(isolation) = confirmed {
            super::response::set_isolation(&mut tx, sensor_id, isolation, now).await?;
        }
        let entry = AuditEntry {
            actor: format!("endpoint:{sensor_id}"),
            action: format!("command.{new_state}"),
            target: format!("endpoint:{sensor_id}"),
            detail: json!({ "command_id": id, "action": action, "result": audited }),
        };
        super::response::append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(CompleteOutcome::Completed)
    }

    pub(super) async fn put_result_part_impl(
        &self,
        sensor_id: &str,
        id: &str,
        (part, parts): (u32, u32),
        body: &[u8],
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut tx = self.write_tx().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM commands WHERE id = ? AND sensor_id = ?")
                .bind(id)
                .bind(sensor_id)
                .fetch_optional(&mut *tx)
                .await?;
        if !matches!(state.as_deref(), Some("queued" | "delivered")) {
            return Ok(None);
        }
        // A resend split differently (another part size) replaces the earlier split.
        sqlx::query("DELETE FROM result_parts WHERE command_id = ? AND parts <> ?")
            .bind(id)
            .bind(parts)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO result_parts (command_id, part, parts, body, received_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (command_id, part) DO NOTHING",
        )
        .bind(id)
        .bind(part)
        .bind(parts)
        .bind(body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM result_parts WHERE command_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let joined = if held == i64::from(parts) {
            let pieces: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT body FROM result_parts WHERE command_id = ? ORDER BY part",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            Some(pieces.concat())
        } else {
            None
        };
        tx.commit().await?;
        Ok(joined)
    }

    pub(super) async fn commands_impl(
        &self,
        sensor_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Command>, StoreError> {
        // Paging by the position of the command the previous page ended with.
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE sensor_id = ?
               AND (? IS NULL OR (created_at, id) < (SELECT created_at, id FROM commands WHERE id = ?))
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(sensor_id)
        .bind(before)
        .bind(before)
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
        expires_at: r.try_get("expires_at")?,
        backend: r.try_get("backend")?,
    })
}

/// Records one state a command went through.
async fn transition(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    state: &str,
    now: i64,
    detail: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO command_transitions (command_id, state, time, detail) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(state)
    .bind(now)
    .bind(detail.map(serde_json::to_string).transpose()?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps a triage package and answers the summary that stands for it in the command's result.
async fn store_triage(
    tx: &mut Transaction<'_, Sqlite>,
    sensor_id: &str,
    id: &str,
    package: &serde_json::Value,
    now: i64,
) -> Result<serde_json::Value, StoreError> {
    let body = serde_json::to_string(package)?;
    let phases: serde_json::Map<String, serde_json::Value> = package["phases"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(name, phase)| {
                    (
                        name.clone(),
                        json!({
                            "items": phase["items"].as_array().map_or(0, Vec::len),
                            "truncated": phase["truncated"],
                            "error": phase["error"],
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = json!({ "phases": phases, "schema": package["schema"] });
    sqlx::query(
        "INSERT INTO triage_packages (id, sensor_id, time, size, summary, body)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(sensor_id)
    .bind(now)
    .bind(i64::try_from(body.len()).unwrap_or(i64::MAX))
    .bind(serde_json::to_string(&summary)?)
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(json!({ "package_id": id, "size": body.len(), "summary": summary }))
}
