//! The audit log, policies, rule switches, tags, edge findings and confirmed isolation.

use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use vigil_ocsf::DetectionFinding;

use super::PgStore;
use crate::store::{AuditEntry, AuditQuery, AuditRecord, Policy, PolicyInput, StoreError};

impl PgStore {
    pub(super) async fn insert_findings_impl(
        &self,
        sensor_id: &str,
        findings: &[DetectionFinding],
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        let batch: Vec<_> = findings
            .iter()
            .map(|f| (sensor_id.to_owned(), f.clone()))
            .collect();
        let stored = insert_findings(&mut tx, &batch, vigil_ocsf::now_ms()).await?;
        // The agent's copy of a finding the server also raised says what the agent did
        // about it: it replaces the server's copy.
        for f in findings.iter().filter(|f| f.unmapped.is_some()) {
            sqlx::query("UPDATE findings SET body = $1 WHERE uid = $2 AND sensor_id = $3")
                .bind(serde_json::to_string(f)?)
                .bind(&f.finding_info.uid)
                .bind(sensor_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn confirm_isolation_impl(
        &self,
        sensor_id: &str,
        isolation: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        set_isolation(&mut tx, sensor_id, isolation, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn set_tags_impl(
        &self,
        sensor_id: &str,
        tags: &[String],
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT sensor_id FROM endpoints WHERE sensor_id = $1")
                .bind(sensor_id)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO endpoint_controls (sensor_id, tags, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (sensor_id) DO UPDATE SET tags = excluded.tags,
                updated_at = excluded.updated_at",
        )
        .bind(sensor_id)
        .bind(serde_json::to_string(tags)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let entry = AuditEntry {
            actor: actor.into(),
            action: "endpoint.tags_set".into(),
            target: format!("endpoint:{sensor_id}"),
            detail: json!({ "tags": tags }),
        };
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn rules_off_impl(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT rule_id FROM rule_switches WHERE NOT enabled ORDER BY rule_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub(super) async fn switch_rule_impl(
        &self,
        rule_id: &str,
        enabled: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rule_switches (rule_id, enabled, updated_at, updated_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (rule_id) DO UPDATE SET enabled = excluded.enabled,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(rule_id)
        .bind(enabled)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let entry = AuditEntry {
            actor: actor.to_owned(),
            action: if enabled {
                "rule.enabled"
            } else {
                "rule.disabled"
            }
            .into(),
            target: format!("rule:{rule_id}"),
            detail: json!({}),
        };
        append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn audit_impl(&self, e: &AuditEntry, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        append_audit(&mut tx, e, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn audit_log_impl(
        &self,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, time, actor, action, target, detail FROM audit_log
             WHERE seq < $1 AND ($2 IS NULL OR target = $3)
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(q.target.as_deref())
        .bind(q.target.as_deref())
        .bind(super::limit(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get("seq")?,
                    time: r.try_get("time")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: serde_json::from_str(r.try_get::<&str, _>("detail")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn create_policy_impl(
        &self,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Policy, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO policies (id, name, description, rules, endpoints, tags, enabled,
                                   revision, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
        )
        .bind(&id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(serde_json::to_string(&p.rules)?)
        .bind(serde_json::to_string(&p.endpoints)?)
        .bind(serde_json::to_string(&p.tags)?)
        .bind(p.enabled)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        conflict_on_name(inserted, &p.name)?;
        audit_policy(&mut tx, actor, "policy.created", &id, p, now).await?;
        tx.commit().await?;
        Ok(Policy {
            id,
            spec: p.clone(),
            revision: 1,
            created_at: now,
            updated_at: now,
        })
    }

    pub(super) async fn update_policy_impl(
        &self,
        id: &str,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Option<Policy>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE policies SET name = $1, description = $2, rules = $3, endpoints = $4, tags = $5,
                    enabled = $6, revision = revision + 1, updated_at = $7
             WHERE id = $8",
        )
        .bind(&p.name)
        .bind(&p.description)
        .bind(serde_json::to_string(&p.rules)?)
        .bind(serde_json::to_string(&p.endpoints)?)
        .bind(serde_json::to_string(&p.tags)?)
        .bind(p.enabled)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await;
        if conflict_on_name(updated, &p.name)? == 0 {
            return Ok(None);
        }
        audit_policy(&mut tx, actor, "policy.updated", id, p, now).await?;
        let row = sqlx::query("SELECT * FROM policies WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        policy_from(&row).map(Some)
    }

    pub(super) async fn delete_policy_impl(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let name: Option<String> =
            sqlx::query_scalar("DELETE FROM policies WHERE id = $1 RETURNING name")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(name) = name else {
            return Ok(false);
        };
        let entry = AuditEntry {
            actor: actor.into(),
            action: "policy.deleted".into(),
            target: format!("policy:{id}"),
            detail: json!({ "name": name }),
        };
        append_audit(&mut tx, &entry, vigil_ocsf::now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn policies_impl(&self) -> Result<Vec<Policy>, StoreError> {
        let rows = sqlx::query("SELECT * FROM policies ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(policy_from).collect()
    }
}

/// The rows a policy write touched, or `Conflict` when its name is taken.
fn conflict_on_name(
    result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
    name: &str,
) -> Result<u64, StoreError> {
    match result {
        Ok(done) => Ok(done.rows_affected()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("a policy named {name:?} already exists"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn audit_policy(
    tx: &mut PgConnection,
    actor: &str,
    action: &str,
    id: &str,
    p: &PolicyInput,
    now: i64,
) -> Result<(), StoreError> {
    let entry = AuditEntry {
        actor: actor.into(),
        action: action.into(),
        target: format!("policy:{id}"),
        detail: serde_json::to_value(p)?,
    };
    append_audit(tx, &entry, now).await
}

fn policy_from(r: &PgRow) -> Result<Policy, StoreError> {
    Ok(Policy {
        id: r.try_get("id")?,
        spec: PolicyInput {
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            rules: serde_json::from_str(r.try_get::<&str, _>("rules")?)?,
            endpoints: serde_json::from_str(r.try_get::<&str, _>("endpoints")?)?,
            tags: serde_json::from_str(r.try_get::<&str, _>("tags")?)?,
            enabled: r.try_get("enabled")?,
        },
        revision: r.try_get("revision")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Appends an audit entry inside a transaction.
pub(super) async fn append_audit(
    tx: &mut PgConnection,
    e: &AuditEntry,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (time, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(serde_json::to_string(&e.detail)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records the isolation an endpoint confirmed; its time changes only when the state does.
pub(super) async fn set_isolation(
    tx: &mut PgConnection,
    sensor_id: &str,
    isolation: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE endpoints SET isolation_at = CASE WHEN isolation = $1 THEN isolation_at ELSE $2 END,
                isolation = $3
         WHERE sensor_id = $4",
    )
    .bind(isolation)
    .bind(now)
    .bind(isolation)
    .bind(sensor_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores findings (skipping ids already held) and raises each endpoint's risk by the findings
/// newly stored; the number newly stored.
pub(super) async fn insert_findings(
    tx: &mut PgConnection,
    findings: &[(String, DetectionFinding)],
    now: i64,
) -> Result<u32, StoreError> {
    let mut added: std::collections::BTreeMap<&str, f64> = Default::default();
    let mut stored = 0u32;
    for (sensor_id, f) in findings {
        let done = sqlx::query(
            "INSERT INTO findings (uid, sensor_id, rule_id, severity_id, time, body)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (uid) DO NOTHING",
        )
        .bind(&f.finding_info.uid)
        .bind(sensor_id)
        .bind(&f.finding_info.analytic.uid)
        .bind(i32::from(f.severity_id))
        .bind(f.time)
        .bind(serde_json::to_string(f)?)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            stored += 1;
            *added.entry(sensor_id.as_str()).or_default() +=
                crate::risk::contribution(f.severity_id);
        }
    }
    for (sensor_id, add) in added {
        super::commands::raise_risk(&mut *tx, sensor_id, add, now).await?;
    }
    Ok(stored)
}
