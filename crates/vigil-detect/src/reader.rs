//! Reading an event's JSON for matching: only the attributes some rule reads.
//!
//! A detection worker gets events as JSON text, and most of each document is never read by a
//! rule (`metadata`, hashes, session details, …). Building the whole `serde_json::Value` tree
//! for it costs several times what evaluating the rules does. [`Wanted`] is the tree of every
//! path a [`crate::RuleSet`] reads (its rules, gates and correlations, the behaviour baseline,
//! and the envelope); [`Wanted::read`] parses a document once, with the same parser and
//! the same checks as [`Event::from_json`], but keeps only those attributes: an attribute a
//! path ends at is kept whole, an object a path goes through keeps only the members wanted
//! below it, and everything else is skipped without being built.
//!
//! Every path reads in the partial document exactly what it reads in the whole one, so the
//! rules match alike; the whole document is parsed only when a finding needs its evidence
//! ([`crate::Evaluator::evaluate_json`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use vigil_ocsf::{Event, EventError};

/// Paths every evaluation reads, whatever the rules: the envelope (`class_uid`, `time`,
/// `metadata.uid`), the activity rules are filtered on, and the device findings and
/// correlation hits name. (The behaviour baseline's are [`crate::baseline::PATHS`].)
const ALWAYS: &[&str] = &["class_uid", "time", "metadata.uid", "activity_id", "device"];

/// A tree of wanted paths: the members of an object to keep, and whether a path ends here
/// (then the attribute is kept whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    children: Vec<(Box<str>, Wanted)>,
    whole: bool,
}

impl Wanted {
    /// The envelope's and the baseline's paths ([`ALWAYS`], [`crate::baseline::PATHS`]).
    pub(crate) fn envelope() -> Self {
        let mut w = Self::default();
        for path in ALWAYS.iter().chain(crate::baseline::PATHS) {
            w.add(path.split('.'));
        }
        w
    }

    /// Adds a path, given as its segments.
    pub(crate) fn add<S: AsRef<str>>(&mut self, segments: impl IntoIterator<Item = S>) {
        let mut node = self;
        for seg in segments {
            if node.whole {
                // Kept whole already: everything below comes with it.
                return;
            }
            let seg = seg.as_ref();
            let at = match node.children.iter().position(|(k, _)| **k == *seg) {
                Some(at) => at,
                None => {
                    node.children.push((seg.into(), Wanted::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.whole = true;
        node.children.clear();
    }

    fn child(&self, key: &str) -> Option<&Wanted> {
        self.children
            .iter()
            .find(|(k, _)| k.len() == key.len() && **k == *key)
            .map(|(_, w)| w)
    }

    /// Parses `bytes` as an event, keeping only the wanted attributes. Accepts and refuses
    /// exactly what [`Event::from_json`] does, and assigns a fresh `metadata.uid` alike when
    /// the document has none.
    pub(crate) fn read(&self, bytes: &[u8]) -> Result<Event, EventError> {
        Event::from_value(self.read_document(bytes)?)
    }

    /// The wanted part of a JSON document, whatever it holds (no envelope checked).
    pub(crate) fn read_document(&self, bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let data = Partial(self).deserialize(&mut de)?;
        de.end()?;
        Ok(data)
    }
}

/// Parses one value, keeping what `.0` wants of it.
struct Partial<'w>(&'w Wanted);

impl<'de> DeserializeSeed<'de> for Partial<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Partial<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    /// An array a path goes through (`unmapped.argv.0`): kept whole, which is rare and small.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element::<Value>()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match self.0.child(&key) {
                Some(w) if w.whole => {
                    let v = map.next_value::<Value>()?;
                    out.insert(key.into_owned(), v);
                }
                Some(w) => {
                    let v = map.next_value_seed(Partial(w))?;
                    out.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A member name, borrowed from the document unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Whether both parsers refuse the document.
    fn refuses(w: &Wanted, text: &str) -> bool {
        w.read(text.as_bytes()).is_err() && Event::from_json(text.as_bytes()).is_err()
    }

    fn wanted(paths: &[&str]) -> Wanted {
        let mut w = Wanted::default();
        for p in paths {
            w.add(p.split('.'));
        }
        w
    }

    #[test]
    fn keeps_the_wanted_paths_whole_and_nothing_else() {
        let w = wanted(&[
            "class_uid",
            "time",
            "metadata.uid",
            "process.file.path",
            "process.cmd_line",
            "unmapped.argv.1",
            "actor",
        ]);
        let doc = json!({"class_uid": 1007, "time": 5, "metadata": {"uid": "u", "v": [1, 2]},
            "process": {"file": {"path": "/bin/sh", "name": "sh", "hashes": [{"v": "x"}]},
                        "cmd_line": "sh -c \"id\"", "pid": 7},
            "unmapped": {"argv": ["a", {"b": 1}], "other": true},
            "actor": {"process": {"pid": 1, "file": {"path": "/sbin/init"}}}});
        let got = w.read(doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            got.data,
            json!({"class_uid": 1007, "time": 5, "metadata": {"uid": "u"},
                "process": {"file": {"path": "/bin/sh"}, "cmd_line": "sh -c \"id\""},
                "unmapped": {"argv": ["a", {"b": 1}]},
                "actor": {"process": {"pid": 1, "file": {"path": "/sbin/init"}}}})
        );
        assert_eq!((got.class_uid, got.time), (1007, 5));
    }

    #[test]
    fn a_shorter_path_keeps_the_subtree_whatever_was_added_before_or_after() {
        let mut a = wanted(&["process.file.path", "process"]);
        let b = wanted(&["process", "process.file.path"]);
        assert_eq!(a, b);
        a.add(["process", "name"]);
        assert_eq!(a, b);
    }

    #[test]
    fn reads_the_envelope_as_the_whole_parser_does() {
        let w = Wanted::envelope();
        let text = r#"{"class_uid":4001,"time":9,"metadata":{"uid":"e-1","x":1},"device":{"hostname":"h"},"n":[1]}"#;
        let partial = w.read(text.as_bytes()).unwrap();
        let whole = Event::from_json(text.as_bytes()).unwrap();
        assert_eq!(
            (partial.uid.as_str(), partial.class_uid, partial.time),
            (whole.uid.as_str(), whole.class_uid, whole.time)
        );
        assert_eq!(partial.data["device"], whole.data["device"]);
        assert_eq!(partial.data.get("n"), None);
        // No id: one is assigned, as the whole parser does.
        let no_id = w.read(br#"{"class_uid":1,"time":1}"#).unwrap();
        assert!(!no_id.uid.is_empty());
    }

    #[test]
    fn escaped_names_duplicate_members_and_numbers_read_as_in_the_whole_document() {
        let w = wanted(&["class_uid", "time", "a.b", "c"]);
        for text in [
            r#"{"class_uid":1,"time":1,"a":{"b":1},"a":{"b":2}}"#,
            r#"{"class_uid":1,"time":1,"\u0061":{"\u0062":"x\ny"}}"#,
            r#"{"class_uid":1,"time":1,"c":-1.5e3,"a":{"b":18446744073709551615}}"#,
            r#"{"class_uid":1,"time":1,"a":"scalar","c":null}"#,
            r#"{"class_uid":1,"time":1,"a":{"b":{"deep":[1,{"x":2}]}}}"#,
        ] {
            let partial = w.read(text.as_bytes()).unwrap();
            let whole = Event::from_json(text.as_bytes()).unwrap();
            for path in ["a.b", "c", "a"] {
                let p = crate::lookup::FieldPath::new(path);
                if path == "a" && whole.data["a"].is_object() {
                    continue;
                }
                assert_eq!(
                    p.lookup(&partial.data),
                    p.lookup(&whole.data),
                    "{text} {path}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_the_whole_parser_refuses() {
        let w = Wanted::envelope();
        for bad in [
            "",
            "[]",
            "{",
            r#"{"class_uid":1,"time":1,"skipped":[1,}"#,
            r#"{"class_uid":1,"time":1,"skipped":"\x"}"#,
            r#"{"class_uid":1,"time":1} trailing"#,
            r#"{"time":1}"#,
            r#"{"class_uid":"1007","time":1}"#,
        ] {
            assert!(refuses(&w, bad), "{bad}");
        }
    }
}
