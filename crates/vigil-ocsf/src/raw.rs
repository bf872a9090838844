//! [`RawEvent`]: an event on the ingest path, kept as the JSON bytes it arrived in.
//!
//! Building a `serde_json::Value` tree for every event and encoding it again for the store costs
//! more than everything else on the way from the wire to the disk. A `RawEvent` is validated
//! exactly as strictly as [`Event::from_json`] (the same parser visits every value: syntax,
//! UTF-8, escapes, number ranges, nesting depth) but nothing is built: the envelope attributes
//! are read out and the document is copied member by member, rewriting only `metadata` (when it
//! has no usable `uid`) and `device` (stamped with the sending endpoint).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::{Event, EventError};

/// One OCSF event on the ingest path: its envelope and its validated JSON document.
///
/// `json` is a JSON object whose `metadata.uid`, `class_uid` and `time` are `uid`, `class_uid`
/// and `time`; parsing it yields the same [`Event`] the envelope describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Globally unique event id (`metadata.uid`).
    pub uid: String,
    /// OCSF class (`class_uid`).
    pub class_uid: u32,
    /// Event time in milliseconds since the epoch (`time`).
    pub time: i64,
    /// The complete OCSF document, JSON-encoded (UTF-8).
    pub json: Vec<u8>,
}

impl RawEvent {
    /// Validates a JSON document as an event and sets its `device.uid` to `device_uid` (the
    /// endpoint it was authenticated as), assigning a fresh `metadata.uid` if it has none.
    ///
    /// Accepts and refuses exactly what [`Event::from_json`] does; the result parses to the
    /// same event as `Event::from_json` followed by [`Event::stamp_device_uid`].
    pub fn from_json_stamped(bytes: &[u8], device_uid: &str) -> Result<Self, EventError> {
        // Pass 1: every value visited by the parser `Value` uses, without building anything.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Validate.deserialize(&mut de)?;
        de.end()?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(EventError::NotAnObject);
        }
        // Pass 2: the top-level members as raw slices.
        let members = members(bytes)?;
        let last = |name: &str| {
            members
                .iter()
                .rev()
                .find(|(k, _)| k.as_ref() == name)
                .map(|m| m.1)
        };
        let class_uid = last("class_uid")
            .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok())
            .and_then(|c| u32::try_from(c).ok())
            .ok_or(EventError::Missing("class_uid"))?;
        let time = last("time")
            .and_then(|raw| serde_json::from_str::<i64>(raw.get()).ok())
            .ok_or(EventError::Missing("time"))?;
        let (uid, metadata) = metadata(last("metadata"))?;
        let device = device(last("device"), device_uid)?;

        let mut json = Vec::with_capacity(bytes.len() + device.len() + 16);
        json.push(b'{');
        for (key, raw) in &members {
            if key == "metadata" || key == "device" {
                continue;
            }
            serde_json::to_writer(&mut json, key.as_ref())?;
            json.push(b':');
            json.extend_from_slice(raw.get().as_bytes());
            json.push(b',');
        }
        json.extend_from_slice(br#""metadata":"#);
        match metadata {
            Cow::Borrowed(raw) => json.extend_from_slice(raw.as_bytes()),
            Cow::Owned(encoded) => json.extend_from_slice(encoded.as_bytes()),
        }
        json.extend_from_slice(br#","device":"#);
        json.extend_from_slice(device.as_bytes());
        json.push(b'}');
        Ok(Self {
            uid,
            class_uid,
            time,
            json,
        })
    }

    /// The raw form of an event built or parsed elsewhere (HTTP fleet API, tests).
    pub fn from_event(event: &Event) -> Self {
        Self {
            uid: event.uid.clone(),
            class_uid: event.class_uid,
            time: event.time,
            json: event.to_json(),
        }
    }

    /// The document as text (it is valid UTF-8 by construction).
    pub fn json_str(&self) -> &str {
        // Both constructors produce UTF-8: serde_json output or validated input.
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
}

/// `metadata` as it will be stored, and the event id: the member as it came when it holds a
/// non-empty string `uid`; otherwise re-encoded with a fresh time-ordered one.
fn metadata(raw: Option<&RawValue>) -> Result<(String, Cow<'_, str>), EventError> {
    let Some(raw) = raw else {
        let uid = uuid::Uuid::now_v7().to_string();
        let encoded = serde_json::to_string(&serde_json::json!({ "uid": uid }))?;
        return Ok((uid, Cow::Owned(encoded)));
    };
    if !raw.get().starts_with('{') {
        return Err(EventError::Missing("metadata"));
    }
    let entries = members(raw.get().as_bytes())?;
    let given = entries
        .iter()
        .rev()
        .find(|(k, _)| k.as_ref() == "uid")
        .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
        .filter(|uid| !uid.is_empty());
    if let Some(uid) = given {
        return Ok((uid, Cow::Borrowed(raw.get())));
    }
    let mut map: Map<String, Value> = serde_json::from_str(raw.get())?;
    let uid = uuid::Uuid::now_v7().to_string();
    map.insert("uid".into(), Value::String(uid.clone()));
    Ok((uid, Cow::Owned(serde_json::to_string(&map)?)))
}

/// `device` as it will be stored: the member as it came, minus any `uid` it claims, plus `uid`
/// set to the authenticated endpoint; `{"uid": …}` alone when it is absent or not an object.
fn device(raw: Option<&RawValue>, device_uid: &str) -> Result<String, EventError> {
    let mut out = String::with_capacity(raw.map_or(0, |r| r.get().len()) + device_uid.len() + 10);
    out.push('{');
    if let Some(raw) = raw.filter(|r| r.get().starts_with('{')) {
        for (key, value) in members(raw.get().as_bytes())? {
            if key == "uid" {
                continue;
            }
            out.push_str(&serde_json::to_string(key.as_ref())?);
            out.push(':');
            out.push_str(value.get());
            out.push(',');
        }
    }
    out.push_str(r#""uid":"#);
    out.push_str(&serde_json::to_string(device_uid)?);
    out.push('}');
    Ok(out)
}

/// The members of a JSON object, in document order, values as raw slices.
fn members(bytes: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, EventError> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some(Key(key)) = map.next_key()? {
                out.push((key, map.next_value::<&RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Ok(de.deserialize_map(Members)?)
}

/// An object key, borrowed from the document unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Visits a whole JSON value the way `serde_json::Value` does (so every string is decoded and
/// checked, every number range-checked) and keeps nothing.
#[derive(Clone, Copy)]
struct Validate;

impl<'de> DeserializeSeed<'de> for Validate {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Validate {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are strings; decoding them as `IgnoredAny` still validates them.
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the tree path the raw path replaces.
    fn via_value(bytes: &[u8], sensor: &str) -> Result<Event, EventError> {
        let mut ev = Event::from_json(bytes)?;
        ev.stamp_device_uid(sensor);
        Ok(ev)
    }

    fn parsed(raw: &RawEvent) -> Event {
        let ev = Event::from_json(&raw.json).expect("raw output parses");
        assert_eq!(ev.uid, raw.uid);
        assert_eq!(ev.class_uid, raw.class_uid);
        assert_eq!(ev.time, raw.time);
        ev
    }

    #[test]
    fn matches_the_value_path_on_valid_documents() {
        let docs: &[&[u8]] = &[
            br#"{"class_uid":1007,"time":5,"metadata":{"uid":"a","version":"1.8.0"},"process":{"pid":1,"cmd_line":"x \"y\" \u00e9"}}"#,
            br#" { "time" : 7 , "class_uid" : 4001, "metadata": {"uid": "b"}, "device": {"uid": "other", "hostname": "h"} } "#,
            br#"{"class_uid":1,"time":-3,"metadata":{"uid":"c"},"device":7,"a":[1,2.5,{"b":null}],"t":true}"#,
            br#"{"class_uid":1,"time":1,"metadata":{"uid":"d"},"dev\u0069ce":{"uid":"escaped-key"}}"#,
            br#"{"class_uid":1,"time":1,"metadata":{"uid":"e"},"class_uid":2,"device":{"uid":"x"},"device":{"name":"n"}}"#,
            br#"{"class_uid":1,"time":1,"metadata":{"uid":"f"},"emoji":"\ud83d\ude00","big":18446744073709551615,"neg":-9223372036854775808,"f":1e300}"#,
        ];
        for doc in docs {
            let raw = RawEvent::from_json_stamped(doc, "me").unwrap();
            let reference = via_value(doc, "me").unwrap();
            assert_eq!(parsed(&raw), reference, "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn a_claimed_device_uid_is_replaced_by_the_sender() {
        let raw = RawEvent::from_json_stamped(
            br#"{"class_uid":1,"time":1,"metadata":{"uid":"x"},"device":{"uid":"victim","hostname":"h"}}"#,
            "me",
        )
        .unwrap();
        let ev = parsed(&raw);
        assert_eq!(ev.get("device.uid"), Some(&Value::from("me")));
        assert_eq!(ev.get("device.hostname"), Some(&Value::from("h")));
        assert!(!raw.json_str().contains("victim"));
    }

    #[test]
    fn missing_or_unusable_metadata_uid_gets_a_fresh_one() {
        for doc in [
            &br#"{"class_uid":1,"time":1}"#[..],
            br#"{"class_uid":1,"time":1,"metadata":{"version":"1.8.0"}}"#,
            br#"{"class_uid":1,"time":1,"metadata":{"uid":""}}"#,
            br#"{"class_uid":1,"time":1,"metadata":{"uid":5,"version":"v"}}"#,
        ] {
            let raw = RawEvent::from_json_stamped(doc, "me").unwrap();
            assert_eq!(raw.uid.len(), 36, "{}", String::from_utf8_lossy(doc));
            let ev = parsed(&raw);
            assert_eq!(ev.get("metadata.uid"), Some(&Value::from(raw.uid.as_str())));
            let reference = via_value(doc, "me").unwrap();
            assert_eq!(
                reference.get("metadata.version"),
                ev.get("metadata.version")
            );
        }
    }

    #[test]
    fn refuses_what_the_value_path_refuses() {
        let bad: &[&[u8]] = &[
            b"",
            b"[1]",
            b"\"x\"",
            b"{",
            br#"{"time":1}"#,
            br#"{"class_uid":1}"#,
            br#"{"class_uid":"1007","time":1}"#,
            br#"{"class_uid":1.5,"time":1}"#,
            br#"{"class_uid":-1,"time":1}"#,
            br#"{"class_uid":4294967296,"time":1}"#,
            br#"{"class_uid":1,"time":1.5}"#,
            br#"{"class_uid":1,"time":9223372036854775808}"#,
            br#"{"class_uid":1,"time":1,"metadata":[]}"#,
            br#"{"class_uid":1,"time":1} x"#,
            br#"{"class_uid":1,"time":1,"x":"\ud800"}"#,
            br#"{"class_uid":1,"time":1,"x":1e400}"#,
            br#"{"class_uid":1,"time":1,"x":"\q"}"#,
            b"{\"class_uid\":1,\"time\":1,\"x\":\"\xff\"}",
            b"{\"class_uid\":1,\"time\":1,\"x\":\"a\nb\"}",
        ];
        for doc in bad {
            let reference = via_value(doc, "me");
            let raw = RawEvent::from_json_stamped(doc, "me");
            assert!(
                reference.is_err() && raw.is_err(),
                "{}: value {:?} raw {:?}",
                String::from_utf8_lossy(doc),
                reference.err(),
                raw.err()
            );
            assert_eq!(
                std::mem::discriminant(&reference.unwrap_err()),
                std::mem::discriminant(&raw.unwrap_err()),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        let deep = format!(
            "{{\"class_uid\":1,\"time\":1,\"x\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(via_value(deep.as_bytes(), "me").is_err());
        assert!(RawEvent::from_json_stamped(deep.as_bytes(), "me").is_err());
    }

    #[test]
    fn from_event_round_trips() {
        let ev =
            Event::from_json(br#"{"class_uid":1007,"time":5,"metadata":{"uid":"a"}}"#).unwrap();
        let raw = RawEvent::from_event(&ev);
        assert_eq!(parsed(&raw), ev);
    }
}
