//! The scale-out store: PostgreSQL, with the event log partitioned by day.
//!
//! Same semantics as the SQLite store (the contract tests in `store/contract_tests/` run on
//! both). What differs is concurrency: several server processes write at once, so every
//! read-modify-write takes its rows `FOR UPDATE` (or skips them, `SKIP LOCKED`, where workers
//! compete), and the event log hands out positions in commit order (see `events.rs`).
//!
//! Connections come from a sqlx pool that checks a connection before handing it out: after a
//! PostgreSQL restart the calls that were in flight fail with [`StoreError::Db`] and the next
//! ones reconnect.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use vigil_ocsf::{DetectionFinding, Event, RawEvent};

use super::{AuditEntry, AuditQuery, AuditRecord, CommandTransition, Policy, PolicyInput};
use super::{
    BodyPage, CertRecord, Command, CompleteOutcome, Endpoint, EndpointControls, EndpointFacts,
    EventQuery, FindingQuery, FindingRow, HeartbeatRecord, Identity, InsertOutcome, NewCommand,
    StoreError,
};

mod alerts;
mod commands;
mod endpoints;
mod events;
mod investigate;
mod operators;
mod response;
#[cfg(test)]
pub(crate) mod tests;

/// Connections per server process unless the caller says otherwise.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a connection (PostgreSQL away, pool exhausted) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL-backed [`super::Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// UTC days (since the epoch) whose event partition this process knows exists.
    partitions: Arc<Mutex<HashSet<i64>>>,
    /// A test's own database, dropped with the last clone of the store.
    #[cfg(test)]
    test_db: Option<Arc<tests::PgTestDb>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`), migrates the schema and makes the event
    /// partitions of today and tomorrow.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(PgConnectOptions::from_str(url)?, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`PgStore::open`] with explicit connection options and pool size.
    pub async fn open_with(
        opts: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_with(opts)
            .await?;
        // sqlx holds an advisory lock while migrating: servers starting together take turns.
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let store = Self {
            pool,
            partitions: Arc::default(),
            #[cfg(test)]
            test_db: None,
        };
        let today = events::day_of(vigil_ocsf::now_ms());
        store.ensure_partitions([today, today + 1]).await?;
        Ok(store)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests that look under the hood.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl super::Store for PgStore {
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
        self.touch_endpoint_impl(sensor_id, now).await
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
        self.insert_batches_impl(&batches).await
    }

    async fn event_bodies_after(&self, seq: i64, limit: u32) -> Result<BodyPage, StoreError> {
        self.event_bodies_after_impl(seq, limit).await
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError> {
        self.query_events_impl(q).await
    }

    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError> {
        self.cursor_impl(consumer).await
    }

    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
        state: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        self.commit_findings_impl(consumer, through_seq, findings, state)
            .await
    }

    async fn detector_states(&self, consumer: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.detector_states_impl(consumer).await
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
        self.triage_packages_impl(sensor_id, limit).await
    }

    async fn triage_package(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.triage_package_impl(sensor_id, id).await
    }

    async fn index_hunt(
        &self,
        consumer: &str,
        through_seq: i64,
        terms: &[super::HuntTerm],
        cmd_lines: &[(i64, String)],
    ) -> Result<(), StoreError> {
        self.index_hunt_impl(consumer, through_seq, terms, cmd_lines)
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
        self.rules_off_impl().await
    }

    async fn switch_rule(
        &self,
        rule_id: &str,
        enabled: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.switch_rule_impl(rule_id, enabled, actor, now).await
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

    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>, StoreError> {
        self.query_findings_impl(q).await
    }
}

/// A `LIMIT` as PostgreSQL takes it (a bigint; sqlx has no unsigned types for PostgreSQL).
fn limit(n: u32) -> i64 {
    i64::from(n)
}
