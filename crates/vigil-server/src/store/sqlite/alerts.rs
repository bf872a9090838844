//! Alerts: findings with the analyst's workflow and comments.

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use crate::store::{
    Alert, AlertComment, AlertUpdate, AlertWorkflow, AuditEntry, FindingQuery, StoreError,
};

/// The workflow states and the moves between them.
fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("new", "acknowledged" | "closed")
            | ("acknowledged", "closed" | "new")
            | ("closed", "acknowledged")
    ) || from == to
}

impl SqliteStore {
    pub(super) async fn query_findings_impl(
        &self,
        q: &FindingQuery,
    ) -> Result<Vec<Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, sensor_id, status, verdict, assignee, updated_at FROM findings
             WHERE time >= ? AND time < ?
               AND (? IS NULL OR sensor_id = ?)
               AND (? IS NULL OR status = ?)
               AND severity_id >= ?
               AND (? IS NULL OR rule_id = ?)
             ORDER BY time DESC, seq DESC LIMIT ?",
        )
        .bind(q.since.unwrap_or(i64::MIN))
        .bind(q.until.unwrap_or(i64::MAX))
        .bind(q.sensor_id.as_deref())
        .bind(q.sensor_id.as_deref())
        .bind(q.status.as_deref())
        .bind(q.status.as_deref())
        .bind(q.min_severity.unwrap_or(0))
        .bind(q.rule_id.as_deref())
        .bind(q.rule_id.as_deref())
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mut v: Value = serde_json::from_str(r.try_get::<&str, _>("body")?)?;
                v["workflow"] = json!(workflow_from(r)?);
                v["sensor_id"] = json!(r.try_get::<&str, _>("sensor_id")?);
                Ok(v)
            })
            .collect()
    }

    pub(super) async fn alert_impl(&self, uid: &str) -> Result<Option<Alert>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT body, sensor_id, status, verdict, assignee, updated_at FROM findings
             WHERE uid = ?",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let comments = sqlx::query(
            "SELECT time, author, text FROM alert_comments WHERE finding_uid = ? ORDER BY id",
        )
        .bind(uid)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|c| {
            Ok(AlertComment {
                time: c.try_get("time")?,
                author: c.try_get("author")?,
                text: c.try_get("text")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        Ok(Some(Alert {
            finding: serde_json::from_str(row.try_get::<&str, _>("body")?)?,
            sensor_id: row.try_get("sensor_id")?,
            workflow: workflow_from(&row)?,
            comments,
        }))
    }

    pub(super) async fn update_alert_impl(
        &self,
        uid: &str,
        u: &AlertUpdate,
        actor: &str,
        now: i64,
    ) -> Result<Option<Alert>, StoreError> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query(
            "SELECT sensor_id, status, verdict, assignee, updated_at FROM findings WHERE uid = ?",
        )
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let current = workflow_from(&row)?;
        let status = u.status.clone().unwrap_or_else(|| current.status.clone());
        if !matches!(status.as_str(), "new" | "acknowledged" | "closed") {
            return Err(StoreError::Conflict(format!(
                "status {status:?} is not one of new, acknowledged, closed"
            )));
        }
        if !allowed(&current.status, &status) {
            return Err(StoreError::Conflict(format!(
                "an alert that is {} cannot become {status}",
                current.status
            )));
        }
        let verdict = match (status.as_str(), u.verdict.as_deref()) {
            ("closed", Some(v @ ("true_positive" | "false_positive"))) => Some(v.to_owned()),
            ("closed", Some(other)) => {
                return Err(StoreError::Conflict(format!(
                    "verdict {other:?} is not true_positive or false_positive"
                )));
            }
            ("closed", None) if current.status == "closed" => current.verdict.clone(),
            ("closed", None) => {
                return Err(StoreError::Conflict(
                    "closing an alert needs a verdict: true_positive or false_positive".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(StoreError::Conflict(
                    "a verdict is given only when closing an alert".into(),
                ));
            }
            (_, None) => None,
        };
        let assignee = match u.assignee.as_deref() {
            Some("") => None,
            Some(a) => Some(a.to_owned()),
            None => current.assignee.clone(),
        };
        sqlx::query(
            "UPDATE findings SET status = ?, verdict = ?, assignee = ?, updated_at = ?
             WHERE uid = ?",
        )
        .bind(&status)
        .bind(&verdict)
        .bind(&assignee)
        .bind(now)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        let entry = AuditEntry {
            actor: actor.to_owned(),
            action: "alert.updated".into(),
            target: format!("alert:{uid}"),
            detail: json!({
                "from": current.status, "status": status, "verdict": verdict,
                "assignee": assignee,
            }),
        };
        super::response::append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        self.alert_impl(uid).await
    }

    pub(super) async fn comment_alert_impl(
        &self,
        uid: &str,
        author: &str,
        text: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let known: Option<String> = sqlx::query_scalar("SELECT uid FROM findings WHERE uid = ?")
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO alert_comments (finding_uid, time, author, text) VALUES (?, ?, ?, ?)",
        )
        .bind(uid)
        .bind(now)
        .bind(author)
        .bind(text)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn workflow_from(r: &SqliteRow) -> Result<AlertWorkflow, StoreError> {
    Ok(AlertWorkflow {
        status: r.try_get("status")?,
        verdict: r.try_get("verdict")?,
        assignee: r.try_get("assignee")?,
        updated_at: r.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn workflow_moves() {
        assert!(allowed("new", "acknowledged"));
        assert!(allowed("acknowledged", "closed"));
        assert!(allowed("closed", "acknowledged"));
        assert!(!allowed("closed", "new"));
    }
}
