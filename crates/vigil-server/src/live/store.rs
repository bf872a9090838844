//! [`LiveStore`]: the store, announcing committed alerts and command changes on the feed.

use std::sync::Arc;

use async_trait::async_trait;
use vigil_ocsf::{DetectionFinding, Event};

use super::LiveFeed;
use crate::store::*;

/// A [`Store`] that forwards every call to `inner` and publishes what was committed.
pub struct LiveStore {
    inner: Arc<dyn Store>,
    feed: LiveFeed,
}

impl LiveStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, feed: LiveFeed) -> Self {
        Self { inner, feed }
    }

    async fn publish_command(&self, sensor_id: &str, id: &str) {
        if !self.feed.has_subscribers() {
            return;
        }
        match self.inner.command(sensor_id, id).await {
            Ok(Some((cmd, _))) => self.feed.publish("command", &cmd),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, command = %id, "Live feed: cannot read a command"),
        }
    }
}

#[async_trait]
impl Store for LiveStore {
    async fn upsert_endpoint(&self, facts: &EndpointFacts, now: i64) -> Result<(), StoreError> {
        self.inner.upsert_endpoint(facts, now).await?;
        self.feed.endpoints_changed();
        Ok(())
    }

    async fn record_heartbeat(
        &self,
        sensor_id: &str,
        hb: &HeartbeatRecord,
        transport: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .record_heartbeat(sensor_id, hb, transport, now)
            .await?;
        self.feed.endpoints_changed();
        Ok(())
    }

    async fn set_revoked(
        &self,
        sensor_id: &str,
        revoked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let known = self.inner.set_revoked(sensor_id, revoked, now).await?;
        self.feed.endpoints_changed();
        Ok(known)
    }

    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
        state: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        self.inner
            .commit_findings(consumer, through_seq, findings, state)
            .await?;
        for (_, f) in findings {
            self.feed.publish("alert", f);
        }
        Ok(())
    }

    async fn detector_states(&self, consumer: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.detector_states(consumer).await
    }

    async fn insert_findings(
        &self,
        sensor_id: &str,
        findings: &[DetectionFinding],
    ) -> Result<u32, StoreError> {
        let stored = self.inner.insert_findings(sensor_id, findings).await?;
        // A batch the endpoint sent again stores nothing and announces nothing.
        if stored > 0 {
            for f in findings {
                self.feed.publish("alert", f);
            }
        }
        Ok(stored)
    }

    async fn enqueue_command(&self, cmd: &NewCommand, now: i64) -> Result<Command, StoreError> {
        let queued = self.inner.enqueue_command(cmd, now).await?;
        self.feed.publish("command", &queued);
        self.feed.endpoints_changed();
        Ok(queued)
    }

    async fn take_pending_commands(
        &self,
        sensor_id: &str,
        redeliver: bool,
        now: i64,
    ) -> Result<Vec<Command>, StoreError> {
        let taken = self
            .inner
            .take_pending_commands(sensor_id, redeliver, now)
            .await?;
        for c in &taken {
            self.feed.publish("command", c);
        }
        Ok(taken)
    }

    async fn complete_command(
        &self,
        sensor_id: &str,
        id: &str,
        succeeded: bool,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<CompleteOutcome, StoreError> {
        let outcome = self
            .inner
            .complete_command(sensor_id, id, succeeded, result, now)
            .await?;
        if outcome == CompleteOutcome::Completed {
            self.publish_command(sensor_id, id).await;
            self.feed.endpoints_changed();
        }
        Ok(outcome)
    }

    async fn put_result_part(
        &self,
        sensor_id: &str,
        id: &str,
        part: (u32, u32),
        body: &[u8],
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner
            .put_result_part(sensor_id, id, part, body, now)
            .await
    }

    async fn confirm_isolation(
        &self,
        sensor_id: &str,
        isolation: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .confirm_isolation(sensor_id, isolation, now)
            .await?;
        self.feed.endpoints_changed();
        Ok(())
    }

    async fn set_tags(
        &self,
        sensor_id: &str,
        tags: &[String],
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let known = self.inner.set_tags(sensor_id, tags, actor, now).await?;
        self.feed.endpoints_changed();
        Ok(known)
    }

    async fn enroll_endpoint(
        &self,
        facts: &EndpointFacts,
        cert: &CertRecord,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .enroll_endpoint(facts, cert, token_hash, now)
            .await
    }

    async fn add_certificate(
        &self,
        sensor_id: &str,
        cert: &CertRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.add_certificate(sensor_id, cert, now).await
    }

    async fn identify_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.inner.identify_certificate(fingerprint).await
    }

    async fn identify_token(&self, token_hash: &str) -> Result<Option<Identity>, StoreError> {
        self.inner.identify_token(token_hash).await
    }

    async fn add_token(
        &self,
        sensor_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.add_token(sensor_id, token_hash, now).await
    }

    async fn heartbeats(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<HeartbeatRecord>, StoreError> {
        self.inner.heartbeats(sensor_id, limit).await
    }

    async fn controls(&self, sensor_id: &str) -> Result<EndpointControls, StoreError> {
        self.inner.controls(sensor_id).await
    }

    async fn touch_endpoint(&self, sensor_id: &str, now: i64) -> Result<(), StoreError> {
        self.inner.touch_endpoint(sensor_id, now).await
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.inner.endpoints().await
    }

    async fn insert_events(
        &self,
        sensor_id: &str,
        events: &[Event],
    ) -> Result<InsertOutcome, StoreError> {
        self.inner.insert_events(sensor_id, events).await
    }

    async fn insert_event_batches(
        &self,
        batches: Vec<(String, Vec<vigil_ocsf::RawEvent>)>,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        self.inner.insert_event_batches(batches).await
    }

    async fn event_bodies_after(&self, seq: i64, limit: u32) -> Result<BodyPage, StoreError> {
        self.inner.event_bodies_after(seq, limit).await
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError> {
        self.inner.query_events(q).await
    }

    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError> {
        self.inner.cursor(consumer).await
    }

    async fn risk(&self, sensor_id: &str, now: i64) -> Result<crate::risk::Risk, StoreError> {
        self.inner.risk(sensor_id, now).await
    }

    async fn command(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<(Command, Vec<CommandTransition>)>, StoreError> {
        self.inner.command(sensor_id, id).await
    }

    async fn commands(
        &self,
        sensor_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Command>, StoreError> {
        self.inner.commands(sensor_id, before, limit).await
    }

    async fn audit(&self, entry: &AuditEntry, now: i64) -> Result<(), StoreError> {
        self.inner.audit(entry, now).await
    }

    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_log(q).await
    }

    async fn create_policy(
        &self,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Policy, StoreError> {
        self.inner.create_policy(p, actor, now).await
    }

    async fn update_policy(
        &self,
        id: &str,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Option<Policy>, StoreError> {
        self.inner.update_policy(id, p, actor, now).await
    }

    async fn delete_policy(&self, id: &str, actor: &str) -> Result<bool, StoreError> {
        self.inner.delete_policy(id, actor).await
    }

    async fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.inner.policies().await
    }

    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>, StoreError> {
        self.inner.query_findings(q).await
    }

    async fn triage_packages(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<TriageSummary>, StoreError> {
        self.inner.triage_packages(sensor_id, limit).await
    }

    async fn triage_package(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.triage_package(sensor_id, id).await
    }

    async fn index_hunt(
        &self,
        consumer: &str,
        through_seq: i64,
        terms: &[HuntTerm],
        cmd_lines: &[(i64, String)],
    ) -> Result<(), StoreError> {
        self.inner
            .index_hunt(consumer, through_seq, terms, cmd_lines)
            .await
    }

    async fn hunt(&self, q: &HuntQuery) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.inner.hunt(q).await
    }

    async fn create_live_query(&self, q: &LiveQuery) -> Result<(), StoreError> {
        self.inner.create_live_query(q).await
    }

    async fn live_query(&self, id: &str) -> Result<Option<LiveQuery>, StoreError> {
        self.inner.live_query(id).await
    }

    async fn live_queries(&self, limit: u32) -> Result<Vec<LiveQuery>, StoreError> {
        self.inner.live_queries(limit).await
    }

    async fn rules_off(&self) -> Result<Vec<String>, StoreError> {
        self.inner.rules_off().await
    }

    async fn switch_rule(
        &self,
        rule_id: &str,
        enabled: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.switch_rule(rule_id, enabled, actor, now).await
    }

    async fn alert(&self, uid: &str) -> Result<Option<Alert>, StoreError> {
        self.inner.alert(uid).await
    }

    async fn update_alert(
        &self,
        uid: &str,
        update: &AlertUpdate,
        actor: &str,
        now: i64,
    ) -> Result<Option<Alert>, StoreError> {
        let alert = self.inner.update_alert(uid, update, actor, now).await?;
        if let Some(a) = &alert {
            self.feed.publish("alert", &a.finding);
        }
        Ok(alert)
    }

    async fn comment_alert(
        &self,
        uid: &str,
        author: &str,
        text: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.comment_alert(uid, author, text, now).await
    }
}

#[async_trait]
impl OperatorStore for LiveStore {
    async fn create_first_user(&self, user: &NewUser, now: i64) -> Result<bool, StoreError> {
        self.inner.create_first_user(user, now).await
    }

    async fn create_user(&self, user: &NewUser, actor: &str, now: i64) -> Result<User, StoreError> {
        self.inner.create_user(user, actor, now).await
    }

    async fn user_credentials(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        self.inner.user_credentials(name).await
    }

    async fn users(&self, q: &NameQuery) -> Result<Vec<User>, StoreError> {
        self.inner.users(q).await
    }

    async fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .set_password(name, password_hash, actor, now)
            .await
    }

    async fn set_role(
        &self,
        name: &str,
        role: OperatorRole,
        actor: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        self.inner.set_role(name, role, actor, now).await
    }

    async fn delete_user(&self, name: &str, actor: &str, now: i64) -> Result<bool, StoreError> {
        self.inner.delete_user(name, actor, now).await
    }

    async fn create_api_token(
        &self,
        token: &NewApiToken,
        actor: &str,
        now: i64,
    ) -> Result<ApiToken, StoreError> {
        self.inner.create_api_token(token, actor, now).await
    }

    async fn api_tokens(&self, q: &NameQuery) -> Result<Vec<ApiToken>, StoreError> {
        self.inner.api_tokens(q).await
    }

    async fn api_token(&self, id_or_name: &str) -> Result<Option<ApiToken>, StoreError> {
        self.inner.api_token(id_or_name).await
    }

    async fn revoke_api_token(&self, id: &str, actor: &str, now: i64) -> Result<bool, StoreError> {
        self.inner.revoke_api_token(id, actor, now).await
    }

    async fn identify_api_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(ApiToken, User)>, StoreError> {
        self.inner.identify_api_token(token_hash, now).await
    }

    async fn create_session(&self, s: &NewOperatorSession, now: i64) -> Result<(), StoreError> {
        self.inner.create_session(s, now).await
    }

    async fn session(
        &self,
        id_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> Result<Option<OperatorSession>, StoreError> {
        self.inner.session(id_hash, idle_ms, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.inner.delete_session(id_hash).await
    }
}
