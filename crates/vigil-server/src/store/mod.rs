//! Durable state: endpoints, events, findings and consumer cursors.
//!
//! [`Store`] is the one interface business logic sees; `sqlite` is the embedded implementation
//! (PostgreSQL follows for scale-out). No caller may know which one is running.

use async_trait::async_trait;
use serde::Serialize;
use vigil_ocsf::{DetectionFinding, Event};

pub mod sqlite;

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

/// An endpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// What the agent reported.
    #[serde(flatten)]
    pub facts: EndpointFacts,
    /// First contact, ms since epoch.
    pub first_seen: i64,
    /// Last contact, ms since epoch.
    pub last_seen: i64,
    /// Events waiting in the agent's buffer at the last heartbeat.
    pub buffered: u64,
    /// Events the agent lost (kernel drops, buffer eviction) at the last heartbeat.
    pub dropped: u64,
}

/// An event read back from the durable log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the log.
    pub seq: i64,
    /// Sensor that sent it.
    pub sensor_id: String,
    /// The event.
    pub event: Event,
}

/// A page of the durable event log.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// The events read, oldest first.
    pub events: Vec<StoredEvent>,
    /// The last log position scanned (including rows skipped as unreadable); `None` when the
    /// page is empty. A consumer advances its cursor to this.
    pub last_seq: Option<i64>,
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
    /// At most this many, newest first.
    pub limit: u32,
}

/// Filter for listing findings.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    /// Only findings with `time >= since` (ms).
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// The durable store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records (or refreshes) an endpoint when its session opens.
    async fn upsert_endpoint(&self, facts: &EndpointFacts, now: i64) -> Result<(), StoreError>;
    /// Records a heartbeat's counters and the time of contact.
    async fn touch_endpoint(
        &self,
        sensor_id: &str,
        now: i64,
        buffered: u64,
        dropped: u64,
    ) -> Result<(), StoreError>;
    /// All endpoints, most recently seen first.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Durably stores a batch in one transaction, skipping events whose uid is already held.
    async fn insert_events(
        &self,
        sensor_id: &str,
        events: &[Event],
    ) -> Result<InsertOutcome, StoreError>;
    /// Up to `limit` rows of the durable log after `seq`, oldest first.
    async fn events_after(&self, seq: i64, limit: u32) -> Result<EventPage, StoreError>;
    /// Events matching a query, newest first, as OCSF documents.
    async fn query_events(&self, q: &EventQuery) -> Result<Vec<serde_json::Value>, StoreError>;
    /// Where a durable consumer stopped (0 when it never ran).
    async fn cursor(&self, consumer: &str) -> Result<i64, StoreError>;
    /// Stores findings and advances a consumer's cursor in one transaction, so a consumer that
    /// dies neither loses nor repeats work.
    async fn commit_findings(
        &self,
        consumer: &str,
        through_seq: i64,
        findings: &[(String, DetectionFinding)],
    ) -> Result<(), StoreError>;
    /// Findings matching a query, newest first, as OCSF documents.
    async fn query_findings(&self, q: &FindingQuery) -> Result<Vec<serde_json::Value>, StoreError>;
}
