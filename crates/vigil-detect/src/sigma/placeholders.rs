//! Placeholders for the `expand` modifier: `%name%` in a value stands for each of a list of
//! values an administrator defines for their site (the admin accounts, the web roots…).
//!
//! Sigma leaves their values to the backend's configuration (pySigma's
//! `value_placeholders`). Vigil reads them from a YAML document among the rule files:
//!
//! ```yaml
//! placeholders:
//!   admins: [root, ops]
//!   web_roots: ['/var/www/*', /srv/http]
//! ```
//!
//! A value is expanded to every combination of its placeholders' values (an OR of them, so
//! `|all` still ANDs the values as written); the substituted text is then read as a Sigma
//! string, so a `*` in a placeholder's value is a wildcard. Text between `%` signs that is not
//! a name (`50%`, `%%`, `% x %`) stays as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::sigma::parse::ParseError;

/// A value may expand to at most this many values.
pub(crate) const MAX_EXPANSIONS: usize = 4096;

/// The placeholders defined in a load, with the file that defined each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Placeholders {
    values: BTreeMap<String, (Vec<String>, PathBuf)>,
}

/// Why a value cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// The value names a placeholder no document defines.
    Undefined(String),
    /// The combinations would be more than [`MAX_EXPANSIONS`].
    TooMany,
}

/// Reads a `placeholders` section: a mapping of names to a value or a list of values.
pub(crate) fn parse(section: &Value) -> Result<Vec<(String, Vec<String>)>, ParseError> {
    let bad = |reason: String| ParseError::Section {
        section: "placeholders",
        reason,
    };
    let map = section
        .as_mapping()
        .ok_or_else(|| bad("must be a mapping of names to values".into()))?;
    let mut out = Vec::with_capacity(map.len());
    for (key, body) in map {
        let name = key.as_str().filter(|n| is_name(n)).ok_or_else(|| {
            bad(format!(
                "{key:?} is not a placeholder name (letters, digits, _ . -)"
            ))
        })?;
        let items: Vec<&Value> = match body {
            Value::Sequence(items) => items.iter().collect(),
            other => vec![other],
        };
        let values = items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(bad(format!(
                    "`{name}`: values must be strings, numbers or booleans"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push((name.to_owned(), values));
    }
    Ok(out)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Placeholders {
    /// Defines a placeholder, or names the file that defined it first.
    pub(crate) fn define(
        &mut self,
        name: String,
        values: Vec<String>,
        path: &Path,
    ) -> Result<(), String> {
        if let Some((_, first)) = self.values.get(&name) {
            return Err(format!(
                "placeholder `{name}` is defined twice (first in {})",
                first.display()
            ));
        }
        self.values.insert(name, (values, path.to_owned()));
        Ok(())
    }

    /// Whether none is defined.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every text the value stands for, in a stable order.
    pub(crate) fn expand(&self, text: &str) -> Result<Vec<String>, ExpandError> {
        let mut out = vec![String::new()];
        for part in split(text) {
            match part {
                Part::Text(t) => out.iter_mut().for_each(|o| o.push_str(t)),
                Part::Name(name) => {
                    let (values, _) = self
                        .values
                        .get(name)
                        .ok_or_else(|| ExpandError::Undefined(name.to_owned()))?;
                    if out.len().saturating_mul(values.len()) > MAX_EXPANSIONS {
                        return Err(ExpandError::TooMany);
                    }
                    out = out
                        .iter()
                        .flat_map(|o| values.iter().map(move |v| format!("{o}{v}")))
                        .collect();
                }
            }
        }
        Ok(out)
    }

    /// The placeholders as a `placeholders` document, which loads back to the same values:
    /// what travels with a rule that uses them to a loader that does not have them (an agent's
    /// policy).
    pub(crate) fn to_yaml(&self) -> String {
        let section: serde_yaml::Mapping = self
            .values
            .iter()
            .map(|(name, (values, _))| {
                let list = values.iter().cloned().map(Value::String).collect();
                (Value::String(name.clone()), Value::Sequence(list))
            })
            .collect();
        let mut doc = serde_yaml::Mapping::new();
        doc.insert("placeholders".into(), Value::Mapping(section));
        serde_yaml::to_string(&doc).unwrap_or_default()
    }
}

enum Part<'a> {
    Text(&'a str),
    Name(&'a str),
}

/// Splits a value into literal text and `%name%` placeholders.
fn split(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut rest = text;
    let mut literal_from = 0;
    let mut offset = 0;
    while let Some(open) = rest.find('%') {
        let after = &rest[open + 1..];
        match after.find('%') {
            Some(close) if is_name(&after[..close]) => {
                let start = offset + open;
                if start > literal_from {
                    parts.push(Part::Text(&text[literal_from..start]));
                }
                parts.push(Part::Name(&after[..close]));
                let consumed = open + 1 + close + 1;
                offset += consumed;
                literal_from = offset;
                rest = &rest[consumed..];
            }
            // Not a placeholder: the `%` is text, and the next one may open one.
            _ => {
                offset += open + 1;
                rest = &rest[open + 1..];
            }
        }
    }
    if literal_from < text.len() {
        parts.push(Part::Text(&text[literal_from..]));
    }
    parts
}

/// Whether a detection section uses `expand` anywhere.
pub(crate) fn uses_expand(detection: &serde_yaml::Mapping) -> bool {
    fn in_value(v: &Value) -> bool {
        match v {
            Value::Mapping(m) => m.iter().any(|(k, v)| {
                k.as_str().is_some_and(|k| {
                    k.split('|')
                        .skip(1)
                        .any(|m| m.eq_ignore_ascii_case("expand"))
                }) || in_value(v)
            }),
            Value::Sequence(items) => items.iter().any(in_value),
            _ => false,
        }
    }
    detection.iter().any(|(_, v)| in_value(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(pairs: &[(&str, &[&str])]) -> Placeholders {
        let mut p = Placeholders::default();
        for (name, values) in pairs {
            let values = values.iter().map(|v| (*v).to_owned()).collect();
            p.define((*name).to_owned(), values, Path::new("p.yml"))
                .unwrap();
        }
        p
    }

    #[test]
    fn values_expand_to_every_combination() {
        let p = defined(&[("user", &["root", "ops"]), ("dir", &["/a", "/b*"])]);
        assert_eq!(p.expand("%user%").unwrap(), ["root", "ops"]);
        assert_eq!(
            p.expand("%dir%/%user%.key").unwrap(),
            ["/a/root.key", "/a/ops.key", "/b*/root.key", "/b*/ops.key"]
        );
        assert_eq!(p.expand("no placeholder").unwrap(), ["no placeholder"]);
        assert_eq!(p.expand("").unwrap(), [""]);
    }

    #[test]
    fn percent_signs_that_are_not_names_stay_text() {
        let p = defined(&[("x", &["1"])]);
        assert_eq!(p.expand("50% of %x%").unwrap(), ["50% of 1"]);
        assert_eq!(p.expand("%% %x%%").unwrap(), ["%% 1%"]);
        assert_eq!(p.expand("% x %").unwrap(), ["% x %"]);
        assert_eq!(p.expand("100%").unwrap(), ["100%"]);
    }

    #[test]
    fn undefined_and_oversized_expansions_are_refused() {
        let p = defined(&[("x", &["1", "2", "3", "4", "5", "6", "7", "8"])]);
        assert_eq!(p.expand("%y%"), Err(ExpandError::Undefined("y".into())));
        assert_eq!(p.expand("%x%%x%%x%%x%").unwrap().len(), 4096);
        assert_eq!(p.expand("%x%%x%%x%%x%%x%"), Err(ExpandError::TooMany));
        let empty = defined(&[("none", &[])]);
        assert!(empty.expand("a%none%").unwrap().is_empty());
    }

    #[test]
    fn a_second_definition_names_the_first_file() {
        let mut p = defined(&[("x", &["1"])]);
        let err = p
            .define("x".into(), vec![], Path::new("q.yml"))
            .unwrap_err();
        assert!(
            err.contains("defined twice") && err.contains("p.yml"),
            "{err}"
        );
    }

    #[test]
    fn sections_parse_and_round_trip() {
        let section: Value =
            serde_yaml::from_str("admins: [root, ops]\nport: 22\nweb: '/var/www/*'").unwrap();
        let parsed = parse(&section).unwrap();
        assert_eq!(parsed[1], ("port".to_owned(), vec!["22".to_owned()]));
        let mut p = Placeholders::default();
        for (name, values) in parsed {
            p.define(name, values, Path::new("p.yml")).unwrap();
        }
        let doc: Value = serde_yaml::from_str(&p.to_yaml()).unwrap();
        let again = parse(&doc["placeholders"]).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(
            again[0],
            ("admins".to_owned(), vec!["root".into(), "ops".into()])
        );
        for bad in ["[a, b]", "{'bad name': x}", "{x: {y: z}}", "{x: [[a]]}"] {
            let section: Value = serde_yaml::from_str(bad).unwrap();
            assert!(parse(&section).is_err(), "{bad}");
        }
    }

    #[test]
    fn expand_is_found_anywhere_in_a_detection() {
        let d = |y: &str| serde_yaml::from_str::<serde_yaml::Mapping>(y).unwrap();
        assert!(uses_expand(&d("sel: {User|expand: '%a%'}\ncondition: sel")));
        assert!(uses_expand(&d(
            "sel: [{Image: x}, {User|contains|EXPAND: '%a%'}]\ncondition: sel"
        )));
        assert!(!uses_expand(&d(
            "sel: {Image|endswith: expand}\ncondition: sel"
        )));
    }
}
