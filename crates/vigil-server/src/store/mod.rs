//! Durable state: endpoints, events, findings and consumer cursors.
//!
//! [`Store`] is the one interface business logic sees; `sqlite` is the embedded implementation,
//! `postgres` the scale-out one. No caller may know which one is running.

use async_trait::async_trait;
use serde::Serialize;
use vigil_ocsf::{DetectionFinding, Event, RawEvent};

mod investigate;
mod log;
pub mod operators;
pub mod postgres;
mod response;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod contract_tests;

pub use operators::{
    ApiToken, NameQuery, NewApiToken, NewOperatorSession, NewUser, OperatorRole, OperatorSession,
    OperatorStore, User,
};

pub use investigate::{
    Alert, AlertComment, AlertUpdate, AlertWorkflow, HuntQuery, HuntTerm, LiveQuery, QueryTarget,
    TriageSummary,
};
pub use log::{BodyPage, EventPage, StoredBody, StoredEvent};
pub use response::{
    AuditEntry, AuditQuery, AuditRecord, CommandTransition, POLICY_RESPONSES, Policy, PolicyInput,
    PolicyRuleSpec,
};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Schema migration failed at start.
    #[error("migrating the store schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document could not be encoded or decoded.
    #[error("stored document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database engine failed an operation made outside sqlx (the event writer).
    #[error("database error: {0}")]
    Engine(String),
    /// The change conflicts with what is stored (a name already taken).
    #[error("{0}")]
    Conflict(String),
}

/// What the agent tells about itself when a session opens.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointFacts {
    /// Sensor id.
    pub sensor_id: String,
    /// Host name.
    pub hostname: String,
    /// OS name.
    pub os_name: String,
    /// Kernel release.
    pub kernel_release: String,
    /// Agent version.
    pub agent_version: String,
    /// Live capabilities.
    pub capabilities: Vec<CapabilityRecord>,
}

/// One telemetry capability as stored and served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CapabilityRecord {
    /// Capability name (`process`).
    pub name: String,
    /// Source providing it (`ebpf`, `proc_connector`).
    pub source: String,
    /// Whether it is live.
    pub live: bool,
    /// Why it is off, or other detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What an agent reports in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct HeartbeatRecord {
    /// Agent time, ms since the epoch.
    pub time: i64,
    /// Agent version.
    pub agent_version: String,
    /// OS name.
    pub os_name: String,
    /// Kernel release.
    pub kernel_release: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Live capabilities.
    pub capabilities: Vec<CapabilityRecord>,
    /// Events waiting in the agent's buffer.
    pub buffered: u64,
    /// Events lost before the buffer (kernel drops, intake failures).
    pub dropped: u64,
    /// Events evicted from the full buffer.
    pub evicted: u64,
    /// Agent CPU, percent of one core.
    pub cpu_percent: f64,
    /// Agent resident memory, bytes.
    pub rss_bytes: u64,
    /// Isolation as the agent enforces it (`none`, `isolated`).
    pub isolation: String,
}

/// What operators decided about an endpoint; no agent message can change it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointControls {
    /// When the endpoint was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Whether an operator asked for isolation.
    pub isolation_requested: bool,
    /// Operator tags.
    pub tags: Vec<String>,
}

/// The endpoint a client certificate or token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Sensor id.
    pub sensor_id: String,
    /// Whether an operator revoked the endpoint.
    pub revoked: bool,
}

/// An endpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// What the agent reported.
    #[serde(flatten)]
    pub facts: EndpointFacts,
    /// The agent's latest heartbeat.
    pub heartbeat: Option<HeartbeatRecord>,
    /// Operator-set state.
    pub controls: EndpointControls,
    /// How the endpoint talks to the fleet (`grpc` agent or `http` third-party sensor).
    pub transport: String,
    /// First contact, ms since epoch.
    pub first_seen: i64,
    /// Last contact, ms since epoch.
    pub last_seen: i64,
    /// Isolation as the endpoint last confirmed it (`none`, `isolated`): from its heartbeats
    /// and the results of isolate / release commands, never from a request.
    pub isolation: String,
    /// When the endpoint last confirmed a change of isolation (ms).
    pub isolation_at: Option<i64>,
}

/// A certificate issued to an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CertRecord {
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    /// Expiry, ms since the epoch.
    pub not_after: i64,
}

/// Outcome of storing a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Events newly stored.
    pub stored: u32,
    /// Events already held (same uid), skipped.
    pub duplicates: u32,
}

/// Filter for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this class.
    pub class_uid: Option<u32>,
    /// Only events with `time >= since` (ms).
    pub since: Option<i64>,
    /// Only this sensor.
    pub sensor_id: Option<String>,
    /// Only events with `time < until` (ms).
    pub until: Option<i64>,
    /// Only events whose OCSF document contains this text (case-insensitive for ASCII).
    pub text: Option<String>,
    /// Only events whose attribute at this dotted OCSF path (`process.file.path`) equals the
    /// value (compared as text).
    pub field: Option<(String, String)>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Filter for listing findings.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    /// Only findings with `time >= since` (ms).
    pub since: Option<i64>,
    /// Only findings with `time < until` (ms).
    pub until: Option<i64>,
    /// Only findings before this position, `(time, seq)` (paging, newest first).
    pub before: Option<(i64, i64)>,
    /// Only this endpoint's.
    pub sensor_id: Option<String>,
    /// Only in this workflow state (`new`, `acknowledged`, `closed`).
    pub status: Option<String>,
    /// Only this severe or worse (OCSF severity id).
    pub min_severity: Option<u8>,
    /// Only raised by this rule.
    pub rule_id: Option<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A response command as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    /// Command id.
    pub id: String,
    /// Target endpoint.
    pub sensor_id: String,
    /// Action (`isolate`, `release`, `kill`, `triage`, `query`, …).
    pub action: String,
    /// Action arguments.
    pub args: serde_json::Value,
    /// `queued`, `delivered`, `succeeded`, `failed`, `expired`.
    pub state: String,
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// When it was queued (ms).
    pub created_at: i64,
    /// When it was handed to the endpoint (ms).
    pub delivered_at: Option<i64>,
    /// When the endpoint reported its outcome (ms).
    pub completed_at: Option<i64>,
    /// The outcome the endpoint reported.
    pub result: Option<serde_json::Value>,
    /// When an undelivered command expires (ms); `None`: never.
    pub expires_at: Option<i64>,
    /// Who carries it out: `agent` or `webhook`.
    pub backend: String,
}

/// A new command to queue.
#[derive(Debug, Clone, Default)]
pub struct NewCommand {
    /// Target endpoint.
    pub sensor_id: String,
    /// Action.
    pub action: String,
    /// Arguments (a JSON object).
    pub args: serde_json::Value,
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub reason: String,
    /// How long it may wait for delivery (ms); `None`: forever.
    pub ttl_ms: Option<i64>,
    /// `agent` (default when empty) or `webhook`.
    pub backend: String,
}

/// Outcome of reporting a command result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// Recorded.
    Completed,
    /// Already had a result (a repeated report): kept the first.
    AlreadyCompleted,
    /// No such command for this endpoint.
    Unknown,
}

/// A finding as listed: its position (for paging) and its OCSF document.
#[derive(Debug, Clone)]
pub struct FindingRow {
    /// Raised (ms), the first half of the paging position.
    pub time: i64,
    /// Position in the findings table, the second half.
    pub seq: i64,
    /// The OCSF detection finding.
    pub body: serde_json::Value,
}

/// The durable store.
#[async_trait]
pub trait Store: OperatorStore + Send + Sync + 'static {
    /// Records (or refreshes) an endpoint when its session opens.
    async fn upsert_endpoint(&self, facts: &EndpointFacts, now: i64) -> Result<(), StoreError>;
    /// Records a new endpoint with its first certificate and its API token hash, in one
    /// transaction; `Conflict` when an endpoint with that id exists already.
    async fn enroll_endpoint(
        &self,
        facts: &EndpointFacts,
        cert: &CertRecord,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Records a renewed certificate for an endpoint.
    async fn add_certificate(
        &self,
        sensor_id: &str,
        cert: &CertRecord,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The endpoint a certificate fingerprint belongs to.
    async fn identify_certificate(&self, fingerprint: &str)
    -> Result<Option<Identity>, StoreError>;
    /// The endpoint an HTTP fleet API token hash belongs to.
    async fn identify_token(&self, token_hash: &str) -> Result<Option<Identity>, StoreError>;
    /// Adds an API token (hash) for an endpoint.
    async fn add_token(
        &self,
        sensor_id: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Stores a heartbeat: the endpoint's agent-reported state and a history row. Never
    /// touches operator-set state.
    async fn record_heartbeat(
        &self,
        sensor_id: &str,
        hb: &HeartbeatRecord,
        transport: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Heartbeat history of an endpoint, newest first.
    async fn heartbeats(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<HeartbeatRecord>, StoreError>;
    /// Operator action: revoke (or reinstate) an endpoint. `false` when it is unknown.
    async fn set_revoked(
        &self,
        sensor_id: &str,
        revoked: bool,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Operator-set state of an endpoint.
    async fn controls(&self, sensor_id: &str) -> Result<EndpointControls, StoreError>;
    /// Records a contact (any message) from an endpoint.
    async fn touch_endpoint(&self, sensor_id: &str, now: i64) -> Result<(), StoreError>;
    /// All endpoints, most recently seen first.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Durably stores a batch in one transaction, skipping events whose uid is already held.
    async fn insert_events(
        &self,
        sensor_id: &str,
        events: &[Event],
    ) -> Result<InsertOutcome, StoreError>;
    /// Durably stores several sensors' batches in one transaction (group commit), skipping
    /// events already held; one outcome per batch, in order.
    async fn insert_event_batches(
        &self,
        batches: Vec<(String, Vec<RawEvent>)>,
    ) -> Result<Vec<InsertOutcome>, StoreError>;
    /// Up to `limit` rows of the durable log after `seq`, oldest first, as stored.
    async fn event_bodies_after(&self, seq: i64, limit: u32) -> Result<BodyPage, StoreError>;
    /// Up to `limit` rows of the durable log after `seq`, oldest first, parsed.
    async fn events_after(&self, seq: i64, limit: u32) -> Result<EventPage, StoreError> {
        Ok(self.event_bodies_after(seq, limit).await?.parse())
    }
    /// Events matching a query, newest first, as OCSF documents.
    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError>;
    /// Where a durable consumer stopped (0 when it never ran).
    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError>;
    /// Stores findings, the consumer's per-endpoint state (`(sensor_id, state)`, replacing
    /// what was kept) and advances its cursor in one transaction, so a consumer that dies
    /// neither loses nor repeats work.
    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
        state: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError>;
    /// The per-endpoint state a consumer committed.
    async fn detector_states(&self, consumer: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The endpoint's risk, decayed to `now`.
    async fn risk(&self, sensor_id: &str, now: i64) -> Result<crate::risk::Risk, StoreError>;
    /// Queues a command, records its `queued` transition and audits it, in one transaction.
    /// An `isolate` (`release`) command sets (clears) the operator's isolation request.
    async fn enqueue_command(&self, cmd: &NewCommand, now: i64) -> Result<Command, StoreError>;
    /// Commands of an endpoint to hand over now, oldest first, marked delivered in the same
    /// transaction: the queued ones and, with `redeliver`, those delivered earlier that never
    /// got a result (the agent executes each id at most once). Queued commands past their
    /// expiry become `expired` instead. Only commands for the `agent` backend.
    async fn take_pending_commands(
        &self,
        sensor_id: &str,
        redeliver: bool,
        now: i64,
    ) -> Result<Vec<Command>, StoreError>;
    /// One command of an endpoint with every state it went through.
    async fn command(
        &self,
        sensor_id: &str,
        id: &str,
    ) -> Result<Option<(Command, Vec<CommandTransition>)>, StoreError>;
    /// Records a command's outcome (`succeeded` or `failed`) as reported by its endpoint (or
    /// the action backend), audits it, and for a successful `isolate` / `release` records the
    /// endpoint's confirmed isolation.
    async fn complete_command(
        &self,
        sensor_id: &str,
        id: &str,
        succeeded: bool,
        result: &serde_json::Value,
        now: i64,
    ) -> Result<CompleteOutcome, StoreError>;
    /// Keeps part `part` of `parts` (0-based) of a command result that came in parts; once
    /// every part is held, answers the joined result (the parts stay until the command
    /// completes, which removes them). `None` while parts are missing, and for a command that
    /// is not this endpoint's or is no longer waiting for a result.
    async fn put_result_part(
        &self,
        sensor_id: &str,
        id: &str,
        part: (u32, u32),
        body: &[u8],
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Commands of an endpoint, newest first; with `before`, only those queued before that
    /// command (paging).
    async fn commands(
        &self,
        sensor_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Command>, StoreError>;
    /// Stores findings an endpoint raised itself (edge detection), skipping ids already held,
    /// and raises its risk; the number newly stored.
    async fn insert_findings(
        &self,
        sensor_id: &str,
        findings: &[DetectionFinding],
    ) -> Result<u32, StoreError>;
    /// Records the isolation state an endpoint reports (`none`, `isolated`).
    async fn confirm_isolation(
        &self,
        sensor_id: &str,
        isolation: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Operator action: replace an endpoint's tags. `false` when it is unknown.
    async fn set_tags(
        &self,
        sensor_id: &str,
        tags: &[String],
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Appends to the audit log.
    async fn audit(&self, entry: &AuditEntry, now: i64) -> Result<(), StoreError>;
    /// Reads the audit log, newest first.
    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Creates a policy (`Conflict` when the name is taken).
    async fn create_policy(
        &self,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Policy, StoreError>;
    /// Replaces a policy's definition; `None` when there is no such policy.
    async fn update_policy(
        &self,
        id: &str,
        p: &PolicyInput,
        actor: &str,
        now: i64,
    ) -> Result<Option<Policy>, StoreError>;
    /// Deletes a policy; `false` when there is no such policy.
    async fn delete_policy(&self, id: &str, actor: &str) -> Result<bool, StoreError>;
    /// Every policy, by name.
    async fn policies(&self) -> Result<Vec<Policy>, StoreError>;
    /// Triage packages of an endpoint, newest first: (id, time, size, summary).
    async fn triage_packages(
        &self,
        sensor_id: &str,
        limit: u32,
    ) -> Result<Vec<TriageSummary>, StoreError>;
    /// One triage package's JSON text.
    async fn triage_package(&self, sensor_id: &str, id: &str)
    -> Result<Option<String>, StoreError>;
    /// Adds hunting index entries and advances the indexer's cursor, in one transaction.
    async fn index_hunt(
        &self,
        consumer: &str,
        through_seq: i64,
        terms: &[HuntTerm],
        cmd_lines: &[(i64, String)],
    ) -> Result<(), StoreError>;
    /// Stored events matching a hunt, newest first: (sensor id, the event).
    async fn hunt(&self, q: &HuntQuery) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    /// Records a live query.
    async fn create_live_query(&self, q: &LiveQuery) -> Result<(), StoreError>;
    /// One live query.
    async fn live_query(&self, id: &str) -> Result<Option<LiveQuery>, StoreError>;
    /// Live queries, newest first.
    async fn live_queries(&self, limit: u32) -> Result<Vec<LiveQuery>, StoreError>;
    /// Ids of the rules an operator switched off.
    async fn rules_off(&self) -> Result<Vec<String>, StoreError>;
    /// Switches a rule on or off (audited).
    async fn switch_rule(
        &self,
        rule_id: &str,
        enabled: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// One alert with its workflow and comments.
    async fn alert(&self, uid: &str) -> Result<Option<Alert>, StoreError>;
    /// Changes an alert's workflow (and audits it); `None` when there is no such alert,
    /// `Conflict` for a transition the workflow does not allow.
    async fn update_alert(
        &self,
        uid: &str,
        update: &AlertUpdate,
        actor: &str,
        now: i64,
    ) -> Result<Option<Alert>, StoreError>;
    /// Adds a comment; `false` when there is no such alert.
    async fn comment_alert(
        &self,
        uid: &str,
        author: &str,
        text: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Findings matching a query, newest first: each OCSF document with its workflow under
    /// `workflow` and its endpoint under `sensor_id`.
    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>, StoreError>;
}
