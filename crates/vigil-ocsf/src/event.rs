//! The class-independent envelope every OCSF record travels in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// OCSF class identifiers Vigil produces or consumes.
pub mod class {
    /// Base Event: a record of no specific class (a log line).
    pub const BASE_EVENT: u32 = 0;
    /// File System Activity.
    pub const FILE_ACTIVITY: u32 = 1001;
    /// Process Activity.
    pub const PROCESS_ACTIVITY: u32 = 1007;
    /// Detection Finding.
    pub const DETECTION_FINDING: u32 = 2004;
    /// Authentication.
    pub const AUTHENTICATION: u32 = 3002;
    /// Network Activity.
    pub const NETWORK_ACTIVITY: u32 = 4001;
    /// DNS Activity.
    pub const DNS_ACTIVITY: u32 = 4003;
}

/// Why a JSON document is not a usable OCSF event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The document is not valid JSON.
    #[error("event is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The document is JSON but not an object.
    #[error("event must be a JSON object")]
    NotAnObject,
    /// A required envelope attribute is missing or has the wrong type.
    #[error("event lacks a valid `{0}`")]
    Missing(&'static str),
}

/// One OCSF event of any class, with the attributes every layer needs pulled out.
///
/// `data` is the complete OCSF object; `uid`, `class_uid` and `time` are copies of its
/// `metadata.uid`, `class_uid` and `time` so stores and buses can index without parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Globally unique event id (`metadata.uid`), the de-duplication key end to end.
    pub uid: String,
    /// OCSF class (`class_uid`).
    pub class_uid: u32,
    /// Event time in milliseconds since the epoch (`time`).
    pub time: i64,
    /// The full OCSF document.
    pub data: Value,
}

impl Event {
    /// Wraps a typed OCSF record, assigning it a fresh time-ordered id if it has none.
    pub fn from_record<T: Serialize>(record: &T) -> Result<Self, EventError> {
        Self::from_value(serde_json::to_value(record)?)
    }

    /// Parses a JSON document into an event, assigning a fresh id if `metadata.uid` is absent.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        Self::from_value(serde_json::from_slice(bytes)?)
    }

    /// Validates the envelope attributes of a JSON value and wraps it.
    pub fn from_value(mut data: Value) -> Result<Self, EventError> {
        let obj = data.as_object_mut().ok_or(EventError::NotAnObject)?;
        let class_uid = obj
            .get("class_uid")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .ok_or(EventError::Missing("class_uid"))?;
        let time = obj
            .get("time")
            .and_then(Value::as_i64)
            .ok_or(EventError::Missing("time"))?;
        let metadata = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
            .ok_or(EventError::Missing("metadata"))?;
        let uid = match metadata.get("uid").and_then(Value::as_str) {
            Some(uid) if !uid.is_empty() => uid.to_owned(),
            _ => {
                let uid = uuid::Uuid::now_v7().to_string();
                metadata.insert("uid".into(), Value::String(uid.clone()));
                uid
            }
        };
        Ok(Self {
            uid,
            class_uid,
            time,
            data,
        })
    }

    /// Sets `device.uid` to the endpoint the event was authenticated as, so no sensor can
    /// attribute events to another.
    pub fn stamp_device_uid(&mut self, sensor_id: &str) {
        if let Some(obj) = self.data.as_object_mut() {
            let device = obj
                .entry("device")
                .or_insert_with(|| Value::Object(Default::default()));
            if !device.is_object() {
                *device = Value::Object(Default::default());
            }
            if let Some(device) = device.as_object_mut() {
                device.insert("uid".into(), Value::String(sensor_id.to_owned()));
            }
        }
    }

    /// The JSON encoding of the full OCSF document.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a `Value` cannot fail: its map keys are always strings.
        serde_json::to_vec(&self.data).unwrap_or_default()
    }

    /// Looks an attribute up by its dotted OCSF path (`process.parent_process.cmd_line`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.data, step)
    }
}

/// One step down an OCSF path: an object's attribute, or an array's element by its index
/// (`unmapped.argv.0`).
pub fn step<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_assigns_uid_and_keeps_envelope() {
        let ev = Event::from_json(br#"{"class_uid":1007,"time":5,"metadata":{}}"#).unwrap();
        assert_eq!(ev.class_uid, 1007);
        assert_eq!(ev.time, 5);
        assert_eq!(
            ev.get("metadata.uid").and_then(Value::as_str),
            Some(ev.uid.as_str())
        );
    }

    #[test]
    fn from_json_keeps_existing_uid() {
        let ev = Event::from_json(br#"{"class_uid":1,"time":1,"metadata":{"uid":"abc"}}"#).unwrap();
        assert_eq!(ev.uid, "abc");
    }

    #[test]
    fn stamp_device_uid_overrides_a_claimed_device() {
        let mut ev = Event::from_json(
            br#"{"class_uid":1,"time":1,"device":{"uid":"other","hostname":"h"}}"#,
        )
        .unwrap();
        ev.stamp_device_uid("me");
        assert_eq!(ev.get("device.uid").and_then(Value::as_str), Some("me"));
        assert_eq!(ev.get("device.hostname").and_then(Value::as_str), Some("h"));
        let mut bare = Event::from_json(br#"{"class_uid":1,"time":1,"device":7}"#).unwrap();
        bare.stamp_device_uid("me");
        assert_eq!(bare.get("device.uid").and_then(Value::as_str), Some("me"));
    }

    #[test]
    fn from_json_rejects_missing_class() {
        let err = Event::from_json(br#"{"time":1}"#).unwrap_err();
        assert!(matches!(err, EventError::Missing("class_uid")));
        assert!(matches!(
            Event::from_json(b"[1]"),
            Err(EventError::NotAnObject)
        ));
    }
}
