//! Stored types of the investigation side: the analyst's workflow on alerts, triage packages,
//! live queries and the hunting index.

use serde::Serialize;

/// The analyst's workflow on an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertWorkflow {
    /// `new`, `acknowledged`, `closed`.
    pub status: String,
    /// `true_positive` or `false_positive` once closed.
    pub verdict: Option<String>,
    /// Who works on it.
    pub assignee: Option<String>,
    /// Last workflow change (ms).
    pub updated_at: Option<i64>,
}

/// A change to an alert's workflow; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertUpdate {
    /// New state.
    pub status: Option<String>,
    /// Verdict (required when closing).
    pub verdict: Option<String>,
    /// Assignee (`Some("")` clears it).
    pub assignee: Option<String>,
}

/// A comment on an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertComment {
    /// When (ms).
    pub time: i64,
    /// Who.
    pub author: String,
    /// What.
    pub text: String,
}

/// An alert with its workflow and comments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The OCSF Detection Finding.
    pub finding: serde_json::Value,
    /// The endpoint it is about.
    pub sensor_id: String,
    /// Workflow state.
    pub workflow: AlertWorkflow,
    /// Comments, oldest first.
    pub comments: Vec<AlertComment>,
}

/// One searchable value of a stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct HuntTerm {
    /// `hash`, `name`, `path`, `ip`, `domain`, `user`.
    pub kind: &'static str,
    /// The value (lower case but for IPs).
    pub value: String,
    /// The event's position in the log.
    pub seq: i64,
    /// Its endpoint.
    pub sensor_id: String,
    /// Its time (ms).
    pub time: i64,
}

/// A hunt: every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct HuntQuery {
    /// (kind, value) pairs, values as indexed.
    pub terms: Vec<(String, String)>,
    /// A command-line substring (3 characters or more).
    pub cmd_line: Option<String>,
    /// Only events at or after this time (ms).
    pub since: Option<i64>,
    /// Only events before this time (ms).
    pub until: Option<i64>,
    /// At most this many events, newest first.
    pub limit: u32,
}

/// One host of a live query.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct QueryTarget {
    /// The endpoint.
    pub sensor_id: String,
    /// Its `query` command, when one was queued.
    pub command_id: Option<String>,
    /// Why none was (the endpoint cannot answer queries).
    pub refused: Option<String>,
}

/// A live query sent to a selection of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveQuery {
    /// Query id.
    pub id: String,
    /// The SQL.
    pub sql: String,
    /// Who asked.
    pub requested_by: String,
    /// When (ms).
    pub created_at: i64,
    /// Hosts that have not answered by then did not answer in time (ms).
    pub deadline: i64,
    /// The hosts asked.
    pub targets: Vec<QueryTarget>,
}

/// A stored triage package, without its body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriageSummary {
    /// Package id (the `triage` command's id).
    pub id: String,
    /// When it arrived (ms).
    pub time: i64,
    /// Size of the JSON document, bytes.
    pub size: i64,
    /// Per phase: items, truncation, error.
    pub summary: serde_json::Value,
}
