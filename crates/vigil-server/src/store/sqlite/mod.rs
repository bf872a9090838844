//! The embedded store: one SQLite database (WAL) in the data directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use vigil_ocsf::{DetectionFinding, Event, RawEvent};

use super::{AuditEntry, AuditQuery, AuditRecord, CommandTransition, Policy, PolicyInput};
use super::{
    BodyPage, CertRecord, Command, CompleteOutcome, Endpoint, EndpointControls, EndpointFacts,
    EventQuery, FindingQuery, FindingRow, HeartbeatRecord, Identity, InsertOutcome, NewCommand,
    StoreError, StoredBody,
};

mod alerts;
mod checkpoint;
mod commands;
mod endpoints;
mod ffi;
mod hunt_writer;
mod investigate;
mod operators;
mod response;
#[cfg(test)]
mod tests;
mod writer;

/// SQLite-backed [`super::Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The event log's own writer connection (group commits of ingested events).
    events: std::sync::Arc<writer::EventWriter>,
}

impl SqliteStore {
    /// Opens (creating if needed) `server.db` in `dir` and migrates it.
    ///
    /// `synchronous = FULL`: an ack is sent only after the batch's commit is on disk, so an
    /// acknowledged event survives a power cut as well as a crash.
    ///
    /// No commit checkpoints the WAL (`wal_autocheckpoint = 0`): with SQLite's default, the
    /// commit that takes the WAL past 1,000 pages copies it into the database file and syncs
    /// that file before it returns, and under a busy fleet that is nearly every group commit
    /// of the event writer, whose batches then wait for the copy. A task of the store runs a
    /// passive checkpoint (which blocks no reader or writer) every quarter second
    /// instead, for as long as the store is open; closing the last connection checkpoints
    /// what is left.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("server.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("wal_autocheckpoint", "0")
            // When the WAL starts over, its file is cut back to 64 MiB.
            .pragma("journal_size_limit", "67108864")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(5)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let events = std::sync::Arc::new(writer::EventWriter::start(&opts).await?);
        tokio::spawn(checkpoint::every_while_open(
            pool.clone(),
            std::sync::Arc::downgrade(&events),
        ));
        Ok(Self { pool, events })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock at once (waiting up to the
    /// busy timeout): a deferred transaction that reads and then writes fails with
    /// `SQLITE_BUSY_SNAPSHOT` when another writer committed in between, which no wait can fix.
    pub(super) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Closes the event writer and the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.events.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl super::Store for SqliteStore {
    async fn upsert_endpoint(&self, f: &EndpointFacts, now: i64) -> Result<(), StoreError> {
        self.upsert_endpoint_impl(f, now).await
    }

    async fn enroll_endpoint(
        &self,
        facts: &EndpointFacts,
        cert: &CertRecord,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.enroll_impl(facts, cert, token_hash, now).await
    }

    async fn add_certificate(
        &self,
        sensor_id: &str,
        cert: &CertRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        self.add_certificate_impl(sensor_id, cert, now).await
    }

    async fn identify_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.identify_cert_impl(fingerprint).await
    }

    async fn identify_token(&self, token_hash: &str) -> Result<Option<Identity>, StoreError> {
        self.identify_token_impl(token_hash).await
    }

    async fn add_token(
        &self,
        sensor_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.add_token_impl(sensor_id, token_hash, now).await
    }

    async fn record_heartbeat(
        &self,
        sensor_id: &str,
        hb: &HeartbeatRecord,
        transport: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_heartbeat_impl(sensor_id, hb, transport, now)
            .await
    }

    async fn heartbeats(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        self.heartbeats_impl(sensor_id, limit).await
    }

    async fn set_revoked(
        &self,
        sensor_id: &str,
        revoked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.set_revoked_impl(sensor_id, revoked, now).await
    }

    async fn controls(&self, sensor_id: &str) -> Result<EndpointControls, StoreError> {
        self.controls_impl(sensor_id).await
    }

    async fn touch_endpoint(&self, sensor_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE endpoints SET last_seen = MAX(last_seen, ?) WHERE sensor_id = ?")
            .bind(now)
            .bind(sensor_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.endpoints_impl().await
    }

    async fn insert_events(
        &self,
        sensor_id: &str,
        events: &[Event],
    ) -> Result<InsertOutcome, StoreError> {
        let raw = events.iter().map(RawEvent::from_event).collect();
        let mut outs = self
            .insert_event_batches(vec![(sensor_id.to_owned(), raw)])
            .await?;
        Ok(outs.pop().unwrap_or_default())
    }

    async fn insert_event_batches(
        &self,
        batches: Vec<(String, Vec<RawEvent>)>,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        self.events.insert(batches).await
    }

    async fn event_bodies_after(&self, seq: i64, limit: u32) -> Result<BodyPage, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, uid, sensor_id, class_uid, time, body FROM events
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = BodyPage {
            events: Vec::with_capacity(rows.len()),
            last_seq: None,
        };
        for r in rows {
            let seq: i64 = r.try_get("seq")?;
            out.last_seq = Some(seq);
            // The envelope columns were read out of the body when it was validated on the way
            // in.
            out.events.push(StoredBody {
                seq,
                sensor_id: r.try_get("sensor_id")?,
                uid: r.try_get("uid")?,
                class_uid: r.try_get("class_uid")?,
                time: r.try_get("time")?,
                body: r.try_get("body")?,
            });
        }
        Ok(out)
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT body FROM events WHERE 1 = 1");
        if let Some(class) = q.class_uid {
            qb.push(" AND class_uid = ").push_bind(class);
        }
        if let Some(since) = q.since {
            qb.push(" AND time >= ").push_bind(since);
        }
        if let Some(sensor) = &q.sensor_id {
            qb.push(" AND sensor_id = ").push_bind(sensor.clone());
        }
        if let Some(until) = q.until {
            qb.push(" AND time < ").push_bind(until);
        }
        if let Some(text) = &q.text {
            qb.push(" AND instr(lower(body), lower(")
                .push_bind(text.clone())
                .push(")) > 0");
        }
        if let Some((path, value)) = &q.field {
            qb.push(" AND CAST(json_extract(body, ")
                .push_bind(format!("$.{path}"))
                .push(") AS TEXT) = ")
                .push_bind(value.clone());
        }
        qb.push(" ORDER BY time DESC, seq DESC LIMIT ")
            .push_bind(q.limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get::<&str, _>("body")?)?))
            .collect()
    }

    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError> {
        let seq = sqlx::query_scalar("SELECT seq FROM cursors WHERE name = ?")
            .bind(consumer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
        state: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let now = vigil_ocsf::now_ms();
        let mut tx = self.write_tx().await?;
        response::insert_findings(&mut tx, findings, now).await?;
        for (sensor_id, blob) in state {
            sqlx::query(
                "INSERT INTO detector_state (consumer, sensor_id, state, updated_at)
                 VALUES (?, ?, ?, ?)
                 ON CONFLICT (consumer, sensor_id)
                 DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(consumer)
            .bind(sensor_id)
            .bind(blob)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO cursors (name, seq) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        )
        .bind(consumer)
        .bind(through_seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn detector_states(&self, consumer: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = sqlx::query_as::<_, (String, Vec<u8>)>(
            "SELECT sensor_id, state FROM detector_state WHERE consumer = ? ORDER BY sensor_id",
        )
        .bind(consumer)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn risk(&self, sensor_id: &str, now: i64) -> Result<crate::risk::Risk, StoreError> {
        self.risk_impl(sensor_id, now).await
    }

    async fn enqueue_command(&self, cmd: &NewCommand, now: i64) -> Result<Command, StoreError> {
        self.enqueue_impl(cmd, now).await
    }

    async fn take_pending_commands(
        &self,
        sensor_id: &str,
        redeliver: bool,
        now: i64,
    ) -> Result<Vec<Command>, StoreError> {
        self.take_pending_impl(sensor_id, redeliver, now).await
    }

    async fn command(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<(Command, Vec<CommandTransition>)>, StoreError> {
        self.command_impl(sensor_id, id).await
    }

    async fn insert_findings(
        &self,
        sensor_id: &str,
        findings: &[DetectionFinding],
    ) -> Result<u32, StoreError> {
        self.insert_findings_impl(sensor_id, findings).await
    }

    async fn confirm_isolation(
        &self,
        sensor_id: &str,
        isolation: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.confirm_isolation_impl(sensor_id, isolation, now).await
    }

    async fn set_tags(
        &self,
        sensor_id: &str,
        tags: &[String],
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.set_tags_impl(sensor_id, tags, actor, now).await
    }

    async fn audit(&self, entry: &AuditEntry, now: i64) -> Result<(), StoreError> {
        self.audit_impl(entry, now).await
    }

    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_log_impl(q).await
    }

    async fn create_policy(
        &self,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Policy, StoreError> {
        self.create_policy_impl(p, actor, now).await
    }

    async fn update_policy(
        &self,
        id: &str,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Option<Policy>, StoreError> {
        self.update_policy_impl(id, p, actor, now).await
    }

    async fn delete_policy(&self, id: &str, actor: &str) -> Result<bool, StoreError> {
        self.delete_policy_impl(id, actor).await
    }

    async fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.policies_impl().await
    }

    async fn triage_packages(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<super::TriageSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, size, summary FROM triage_packages WHERE sensor_id = ?
             ORDER BY time DESC, id DESC LIMIT ?",
        )
        .bind(sensor_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(super::TriageSummary {
                    id: r.try_get("id")?,
                    time: r.try_get("time")?,
                    size: r.try_get("size")?,
                    summary: serde_json::from_str(r.try_get::<&str, _>("summary")?)?,
                })
            })
            .collect()
    }

    async fn triage_package(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT body FROM triage_packages WHERE sensor_id = ? AND id = ?")
                .bind(sensor_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn index_hunt(
        &self,
        consumer: &str,
        through_seq: i64,
        terms: &[super::HuntTerm],
        cmd_lines: &[(i64, String)],
    ) -> Result<(), StoreError> {
        self.events
            .index_hunt(hunt_writer::HuntPage {
                consumer: consumer.to_owned(),
                through_seq,
                terms: terms.to_vec(),
                cmd_lines: cmd_lines.to_vec(),
            })
            .await
    }

    async fn hunt(
        &self,
        q: &super::HuntQuery,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.hunt_impl(q).await
    }

    async fn create_live_query(&self, q: &super::LiveQuery) -> Result<(), StoreError> {
        self.create_live_query_impl(q).await
    }

    async fn live_query(&self, id: &str) -> Result<Option<super::LiveQuery>, StoreError> {
        self.live_query_impl(id).await
    }

    async fn live_queries(&self, limit: u32) -> Result<Vec<super::LiveQuery>, StoreError> {
        self.live_queries_impl(limit).await
    }

    async fn rules_off(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT rule_id FROM rule_switches WHERE enabled = 0 ORDER BY rule_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn switch_rule(
        &self,
        rule_id: &str,
        enabled: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO rule_switches (rule_id, enabled, updated_at, updated_by) VALUES (?, ?, ?, ?)
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
            detail: serde_json::json!({}),
        };
        response::append_audit(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn complete_command(
        &self,
        sensor_id: &str,
        id: &str,
        succeeded: bool,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<CompleteOutcome, StoreError> {
        self.complete_impl(sensor_id, id, succeeded, result, now)
            .await
    }

    async fn put_result_part(
        &self,
        sensor_id: &str,
        id: &str,
        part: (u32, u32),
        body: &[u8],
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.put_result_part_impl(sensor_id, id, part, body, now)
            .await
    }

    async fn commands(
        &self,
        sensor_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Command>, StoreError> {
        self.commands_impl(sensor_id, before, limit).await
    }

    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>, StoreError> {
        self.query_findings_impl(q).await
    }

    async fn alert(&self, uid: &str) -> Result<Option<super::Alert>, StoreError> {
        self.alert_impl(uid).await
    }

    async fn update_alert(
        &self,
        uid: &str,
        update: &super::AlertUpdate,
        actor: &str,
        now: i64,
    ) -> Result<Option<super::Alert>, StoreError> {
        self.update_alert_impl(uid, update, actor, now).await
    }

    async fn comment_alert(
        &self,
        uid: &str,
        author: &str,
        text: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.comment_alert_impl(uid, author, text, now).await
    }
}
