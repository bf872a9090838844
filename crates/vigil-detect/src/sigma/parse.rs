//! Sigma YAML files: documents, their kind, and the attributes of a detection rule.
//!
//! A file may hold several YAML documents. Each is a detection rule, a correlation rule
//! (`correlation:`), a global filter (`filter:`), the values of `expand` placeholders
//! (`placeholders:`), or a Sigma 1 rule collection document (`action: global|reset|repeat`);
//! empty documents are skipped.

use serde_yaml::{Mapping, Value};
use vigil_ocsf::Severity;
use vigil_ocsf::fieldmap::LogSource;

use crate::sigma::correlation::{self, RawCorrelation};
use crate::sigma::filter::{self, RawFilter};
use crate::sigma::placeholders;

/// Why a document is not a usable Sigma rule.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file is not valid YAML.
    #[error("invalid YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// The document is YAML but not a mapping.
    #[error("document is not a mapping")]
    NotAMapping,
    /// A mandatory attribute is missing.
    #[error("missing mandatory `{0}`")]
    Missing(&'static str),
    /// An attribute has the wrong type.
    #[error("`{field}` must be {expected}")]
    Type {
        /// The attribute.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// `level` is not one of the five Sigma levels.
    #[error("unknown level `{0}` (expected informational, low, medium, high or critical)")]
    Level(String),
    /// A `correlation` or `filter` section is not valid.
    #[error("`{section}`: {reason}")]
    Section {
        /// `correlation`, `filter` or `placeholders`.
        section: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Title, id and name, read even from a document that is otherwise unusable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// `title`, when it is a string.
    pub(crate) title: Option<String>,
    /// `id`, when it is a string.
    pub(crate) id: Option<String>,
    /// `name`, when it is a string.
    pub(crate) name: Option<String>,
}

/// The descriptive attributes detection and correlation rules share.
#[derive(Debug, Clone)]
pub(crate) struct RawMeta {
    pub(crate) title: String,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) author: Option<String>,
    pub(crate) references: Vec<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) falsepositives: Vec<String>,
    pub(crate) level: Option<Severity>,
}

impl RawMeta {
    /// Whether the rule declares Sigma `status: unsupported` ("the rule cannot be used in its
    /// current state").
    pub(crate) fn declared_unsupported(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("unsupported"))
    }
}

/// The attributes of a detection rule Vigil uses.
#[derive(Debug, Clone)]
pub(crate) struct RawRule {
    pub(crate) meta: RawMeta,
    pub(crate) logsource: LogSource,
    pub(crate) detection: Mapping,
}

/// What a document is.
#[derive(Debug)]
pub(crate) enum Document {
    /// A detection rule.
    Rule(Box<RawRule>),
    /// A correlation rule.
    Correlation(Box<RawCorrelation>),
    /// A global filter.
    Filter(Box<RawFilter>),
    /// A Sigma 1 collection document (`action: …`).
    Collection(String),
    /// Values for the `expand` modifier's placeholders (`placeholders:`).
    Placeholders(Vec<(String, Vec<String>)>),
}

/// One document of a file.
#[derive(Debug)]
pub(crate) struct ParsedDoc {
    /// Title, id and name, as far as they could be read.
    pub(crate) header: Header,
    /// The logsource, formatted for reports (empty when unreadable).
    pub(crate) logsource: String,
    /// The document, or why it is unusable.
    pub(crate) body: Result<Document, ParseError>,
}

/// Splits a file into its documents. A YAML syntax error ends the file with one failed entry.
pub(crate) fn parse_documents(text: &str) -> Vec<ParsedDoc> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        match <Value as serde::Deserialize>::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(value) => docs.push(parse_document(&value)),
            Err(e) => {
                docs.push(ParsedDoc {
                    header: Header::default(),
                    logsource: String::new(),
                    body: Err(ParseError::Yaml(e)),
                });
                break;
            }
        }
    }
    docs
}

fn parse_document(value: &Value) -> ParsedDoc {
    let Some(map) = value.as_mapping() else {
        return ParsedDoc {
            header: Header::default(),
            logsource: String::new(),
            body: Err(ParseError::NotAMapping),
        };
    };
    let text = |key| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let header = Header {
        title: text("title"),
        id: text("id"),
        name: text("name"),
    };
    let logsource = map.get("logsource").map(read_logsource);
    let shown = match &logsource {
        Some(Ok(ls)) => format_logsource(ls),
        _ => String::new(),
    };
    let body = if let Some(section) = map.get("correlation") {
        parse_meta(map).and_then(|meta| {
            correlation::parse(meta, map, section).map(|c| Document::Correlation(Box::new(c)))
        })
    } else if let Some(section) = map.get("filter") {
        parse_filter(map, logsource, section)
    } else if let (Some(section), None) = (map.get("placeholders"), map.get("detection")) {
        placeholders::parse(section).map(Document::Placeholders)
    } else if let Some(action) = map.get("action") {
        Ok(Document::Collection(
            action.as_str().unwrap_or("?").to_owned(),
        ))
    } else {
        parse_rule(map, logsource)
    };
    ParsedDoc {
        header,
        logsource: shown,
        body,
    }
}

fn parse_rule(
    map: &Mapping,
    logsource: Option<Result<LogSource, ParseError>>,
) -> Result<Document, ParseError> {
    let meta = parse_meta(map)?;
    let logsource = logsource.ok_or(ParseError::Missing("logsource"))??;
    let detection = match map.get("detection") {
        Some(Value::Mapping(d)) => d.clone(),
        Some(_) => {
            return Err(ParseError::Type {
                field: "detection",
                expected: "a mapping",
            });
        }
        None => return Err(ParseError::Missing("detection")),
    };
    Ok(Document::Rule(Box::new(RawRule {
        meta,
        logsource,
        detection,
    })))
}

/// The shared attributes of a detection or correlation rule.
fn parse_meta(map: &Mapping) -> Result<RawMeta, ParseError> {
    let title = string(map, "title")?.ok_or(ParseError::Missing("title"))?;
    let level = match string(map, "level")? {
        Some(l) => Some(Severity::from_sigma_level(&l).ok_or(ParseError::Level(l))?),
        None => None,
    };
    Ok(RawMeta {
        title,
        id: string(map, "id")?,
        name: string(map, "name")?,
        status: string(map, "status")?,
        description: string(map, "description")?,
        author: string(map, "author")?,
        references: strings(map, "references")?,
        tags: strings(map, "tags")?,
        falsepositives: strings(map, "falsepositives")?,
        level,
    })
}

fn parse_filter(
    map: &Mapping,
    logsource: Option<Result<LogSource, ParseError>>,
    section: &Value,
) -> Result<Document, ParseError> {
    let meta = parse_meta(map)?;
    let logsource = logsource.ok_or(ParseError::Missing("logsource"))??;
    filter::parse(meta, logsource, section).map(|f| Document::Filter(Box::new(f)))
}

/// An optional scalar attribute, as text.
pub(crate) fn string(map: &Mapping, field: &'static str) -> Result<Option<String>, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_text(v).map(Some).ok_or(ParseError::Type {
            field,
            expected: "a string",
        }),
    }
}

/// An optional list of scalars (a single scalar is read as a list of one).
pub(crate) fn strings(map: &Mapping, field: &'static str) -> Result<Vec<String>, ParseError> {
    let err = || ParseError::Type {
        field,
        expected: "a list of strings",
    };
    match map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| scalar_text(v).ok_or_else(err))
            .collect(),
        Some(v) => scalar_text(v).map(|s| vec![s]).ok_or_else(err),
    }
}

/// The text of a string, number or boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn read_logsource(value: &Value) -> Result<LogSource, ParseError> {
    let map = value.as_mapping().ok_or(ParseError::Type {
        field: "logsource",
        expected: "a mapping",
    })?;
    let text = |key: &'static str| match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ParseError::Type {
            field: "logsource",
            expected: "a mapping of strings (category, product, service)",
        }),
    };
    Ok(LogSource {
        category: text("category")?,
        product: text("product")?,
        service: text("service")?,
    })
}

/// `category=process_creation product=linux`, in that order, absent parts left out.
pub(crate) fn format_logsource(ls: &LogSource) -> String {
    let parts: Vec<String> = [
        ("category", &ls.category),
        ("product", &ls.product),
        ("service", &ls.service),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "(empty logsource)".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "
title: Test
id: 929a690e-bef0-4204-a928-ef5e620d6fcc
status: test
description: d
author: someone
references: https://example.invalid
tags: [attack.execution, attack.t1059]
logsource:
    category: process_creation
    product: linux
    definition: anything
detection:
    selection:
        Image: /bin/sh
    condition: selection
falsepositives: Unknown
level: high
custom: kept out
";

    fn rule(docs: &[ParsedDoc]) -> &RawRule {
        match &docs[0].body {
            Ok(Document::Rule(r)) => r,
            other => panic!("not a rule: {other:?}"),
        }
    }

    #[test]
    fn rule_attributes_are_read() {
        let docs = parse_documents(RULE);
        assert_eq!(docs.len(), 1);
        let r = rule(&docs);
        assert_eq!(r.meta.title, "Test");
        assert_eq!(r.meta.level, Some(Severity::High));
        assert_eq!(r.meta.tags, ["attack.execution", "attack.t1059"]);
        assert_eq!(r.meta.references, ["https://example.invalid"]);
        assert_eq!(r.meta.falsepositives, ["Unknown"]);
        assert_eq!(r.logsource.product.as_deref(), Some("linux"));
        assert_eq!(docs[0].logsource, "category=process_creation product=linux");
    }

    #[test]
    fn several_documents_and_their_kinds() {
        let text = format!(
            "{RULE}---\ntitle: c\nname: cn\ncorrelation:\n  type: event_count\n  rules: x\n  timespan: 1m\n  condition: {{gte: 2}}\n---\n---\ntitle: f\nlogsource: {{product: linux}}\nfilter:\n  rules: []\n  selection: {{User: x}}\n  condition: not selection\n---\naction: global\n---\ntitle: c2\ncorrelation:\n  type: event_count\n"
        );
        let docs = parse_documents(&text);
        assert_eq!(docs.len(), 5);
        assert!(matches!(docs[1].body, Ok(Document::Correlation(_))));
        assert_eq!(docs[1].header.title.as_deref(), Some("c"));
        assert_eq!(docs[1].header.name.as_deref(), Some("cn"));
        assert!(matches!(docs[2].body, Ok(Document::Filter(_))));
        assert!(matches!(&docs[3].body, Ok(Document::Collection(a)) if a == "global"));
        let err = docs[4].body.as_ref().expect_err("no rules");
        assert!(err.to_string().contains("`correlation`"), "{err}");
    }

    #[test]
    fn broken_documents_say_why() {
        let cases = [
            ("title: [unclosed", "invalid YAML"),
            ("- a\n- b\n", "not a mapping"),
            (
                "id: x\nlogsource: {}\ndetection: {condition: a}\n",
                "missing mandatory `title`",
            ),
            (
                "title: t\ndetection: {condition: a}\n",
                "missing mandatory `logsource`",
            ),
            (
                "title: t\nlogsource: {product: linux}\n",
                "missing mandatory `detection`",
            ),
            (
                "title: t\nlevel: severe\nlogsource: {}\ndetection: {}\n",
                "unknown level",
            ),
            (
                "title: t\ntags: {a: b}\nlogsource: {}\ndetection: {}\n",
                "`tags` must be",
            ),
            (
                "title: t\nlogsource: {product: [x]}\ndetection: {}\n",
                "`logsource` must be",
            ),
        ];
        for (text, want) in cases {
            let docs = parse_documents(text);
            let err = docs[0].body.as_ref().expect_err(text);
            assert!(err.to_string().contains(want), "{text:?}: {err}");
        }
        let docs = parse_documents("id: abc\ntitle: t\nlogsource: 3\ndetection: {}\n");
        assert_eq!(docs[0].header.id.as_deref(), Some("abc"));
    }
}
