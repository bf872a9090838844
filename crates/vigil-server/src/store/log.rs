//! The durable event log as its readers get it: pages of stored documents.

use vigil_ocsf::Event;

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

/// An event read back from the durable log as the document it was stored as, unparsed.
#[derive(Debug, Clone)]
pub struct StoredBody {
    /// Position in the log.
    pub seq: i64,
    /// Sensor that sent it.
    pub sensor_id: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `class_uid`.
    pub class_uid: u32,
    /// `time` (ms).
    pub time: i64,
    /// The OCSF document, JSON.
    pub body: String,
}

/// A page of the durable event log, unparsed.
#[derive(Debug, Clone, Default)]
pub struct BodyPage {
    /// The events read, oldest first.
    pub events: Vec<StoredBody>,
    /// The last log position read; `None` when the page is empty.
    pub last_seq: Option<i64>,
}

impl BodyPage {
    /// The page's events as parsed documents. A body that no longer parses as a JSON object is
    /// skipped (with a warning) rather than wedging the log; `last_seq` still covers it.
    pub fn parse(self) -> EventPage {
        let events = self
            .events
            .into_iter()
            .filter_map(
                |e| match serde_json::from_str::<serde_json::Value>(&e.body) {
                    Ok(data) if data.is_object() => Some(StoredEvent {
                        seq: e.seq,
                        sensor_id: e.sensor_id,
                        event: Event {
                            uid: e.uid,
                            class_uid: e.class_uid,
                            time: e.time,
                            data,
                        },
                    }),
                    _ => {
                        tracing::warn!(seq = e.seq, "Skipping malformed stored event");
                        None
                    }
                },
            )
            .collect();
        EventPage {
            events,
            last_seq: self.last_seq,
        }
    }
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
