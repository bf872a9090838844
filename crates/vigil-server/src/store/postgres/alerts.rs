//! Alerts: findings with the analyst's workflow and comments.

use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::store::{
    Alert, AlertComment, AlertUpdate, AlertWorkflow, AuditEntry, FindingQuery, FindingRow,
    StoreError,
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

impl PgStore {
    pub(super) async fn query_findings_impl(
        &self,
        q: &FindingQuery,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT time, seq, body, sensor_id, status, verdict, assignee, updated_at
             FROM findings WHERE true",
        );
        if let Some(since) = q.since {
            qb.push(" AND time >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            qb.push(" AND time < ").push_bind(until);
        }
        if let Some((time, seq)) = q.before {
            qb.push(" AND (time < ")
                .push_bind(time)
                .push(" OR (time = ")
                .push_bind(time)
                .push(" AND seq < ")
                .push_bind(seq)
                .push("))");
        }
        if let Some(sensor) = &q.sensor_id {
            qb.push(" AND sensor_id = ").push_bind(sensor.clone());
        }
        if let Some(status) = &q.status {
            qb.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(sev) = q.min_severity {
            qb.push(" AND severity_id >= ").push_bind(i32::from(sev));
        }
        if let Some(rule) = &q.rule_id {
            qb.push(" AND rule_id = ").push_bind(rule.clone());
        }
        qb.push(" ORDER BY time DESC, seq DESC LIMIT ")
            .push_bind(super::limit(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let mut body: Value = serde_json::from_str(r.try_get::<&str, _>("body")?)?;
                body["workflow"] = json!(workflow_from(r)?);
                body["sensor_id"] = json!(r.try_get::<&str, _>("sensor_id")?);
                Ok(FindingRow {
                    time: r.try_get("time")?,
                    seq: r.try_get("seq")?,
                    body,
                })
            })
            .collect()
    }

    pub(super) async fn alert_impl(&self, uid: &str) -> Result<Option<Alert>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT body, sensor_id, status, verdict, assignee, updated_at FROM findings
             WHERE uid = $1",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let comments = sqlx::query(
            "SELECT time, author, text FROM alert_comments WHERE finding_uid = $1 ORDER BY id",
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
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT sensor_id, status, verdict, assignee, updated_at FROM findings WHERE uid = $1
             FOR UPDATE",
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
            "UPDATE findings SET status = $1, verdict = $2, assignee = $3, updated_at = $4
             WHERE uid = $5",
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
        let mut tx = self.pool.begin().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT uid FROM findings WHERE uid = $1 FOR SHARE")
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO alert_comments (finding_uid, time, author, text) VALUES ($1, $2, $3, $4)",
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

fn workflow_from(r: &PgRow) -> Result<AlertWorkflow, StoreError> {
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
