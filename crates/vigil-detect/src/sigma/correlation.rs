//! The `correlation` section of a Sigma correlation rule, read and checked (correlation rules
//! specification 2.1.0). Resolving its references happens once every file is read
//! ([`super::resolve`]).

use serde_yaml::{Mapping, Value};

use crate::correlation::{CorrelationType, CountCondition, CountOp};
use crate::sigma::parse::{ParseError, RawMeta};

/// A correlation rule as written, checked but not yet resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawCorrelation {
    pub(crate) meta: RawMeta,
    /// The type, or the name of a type Vigil does not implement (`value_sum`, …).
    pub(crate) kind: Result<CorrelationType, String>,
    /// The rules referred to, by id or name, as written.
    pub(crate) rules: Vec<String>,
    pub(crate) group_by: Vec<String>,
    pub(crate) timespan_ms: i64,
    /// The condition; `None` for a temporal correlation without one.
    pub(crate) condition: Option<CountCondition>,
    /// A condition written as an expression (pySigma's "extended" temporal conditions).
    pub(crate) extended_condition: Option<String>,
    /// `condition.field`: the field(s) a `value_count` counts the distinct values of.
    pub(crate) field: Vec<String>,
    pub(crate) aliases: Vec<Alias>,
    /// `generate`: whether the referenced rules also raise findings of their own.
    pub(crate) generate: bool,
}

/// One `aliases` entry: a name usable in `group-by`, and the field it stands for in the events
/// of each referenced rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alias {
    pub(crate) name: String,
    /// (rule reference, field name in that rule's events).
    pub(crate) fields: Vec<(String, String)>,
}

impl Alias {
    /// The field this alias stands for in the events of the rule known by `refs` (its id and
    /// name).
    pub(crate) fn field_for(&self, refs: &[&str]) -> Option<&str> {
        self.fields
            .iter()
            .find(|(r, _)| refs.contains(&r.as_str()))
            .map(|(_, f)| f.as_str())
    }
}

fn bad(reason: impl Into<String>) -> ParseError {
    ParseError::Section {
        section: "correlation",
        reason: reason.into(),
    }
}

/// Reads a correlation document's `correlation` section. `generate` is read from the section
/// (as pySigma does) or from the document (as the JSON schema has it).
pub(crate) fn parse(
    meta: RawMeta,
    doc: &Mapping,
    section: &Value,
) -> Result<RawCorrelation, ParseError> {
    let map = section
        .as_mapping()
        .ok_or_else(|| bad("must be a mapping"))?;
    let kind = match map.get("type") {
        None | Some(Value::Null) => return Err(bad("missing mandatory `type`")),
        Some(Value::String(t)) => match t.as_str() {
            "event_count" => Ok(CorrelationType::EventCount),
            "value_count" => Ok(CorrelationType::ValueCount),
            "temporal" => Ok(CorrelationType::Temporal),
            "temporal_ordered" => Ok(CorrelationType::TemporalOrdered),
            "value_sum" | "value_avg" | "value_percentile" | "value_median" => Err(t.clone()),
            other => return Err(bad(format!("unknown correlation type `{other}`"))),
        },
        Some(_) => return Err(bad("`type` must be a string")),
    };
    let rules = names(map, "rules")?;
    if rules.is_empty() {
        return Err(bad("`rules` must name at least one rule"));
    }
    let group_by = names(map, "group-by")?;
    let timespan_ms = match map.get("timespan") {
        None | Some(Value::Null) => return Err(bad("missing mandatory `timespan`")),
        Some(Value::String(t)) => parse_timespan(t)?,
        Some(_) => return Err(bad("`timespan` must be a string such as `5m`")),
    };
    let counted = matches!(
        kind,
        Ok(CorrelationType::EventCount | CorrelationType::ValueCount)
    );
    let temporal = matches!(
        kind,
        Ok(CorrelationType::Temporal | CorrelationType::TemporalOrdered)
    );
    let (mut condition, mut extended_condition, mut field) = (None, None, Vec::new());
    match map.get("condition") {
        None | Some(Value::Null) if counted => {
            return Err(bad("missing mandatory `condition`"));
        }
        None | Some(Value::Null) => {}
        Some(Value::Mapping(c)) => {
            field = names(c, "field")?;
            // Metric types (not implemented) take fractional thresholds; only check ours.
            if kind.is_ok() {
                condition = Some(parse_condition(c)?);
            }
        }
        Some(Value::String(expr)) if temporal => extended_condition = Some(expr.clone()),
        Some(_) => return Err(bad("`condition` must be a mapping such as `{gte: 10}`")),
    }
    if kind == Ok(CorrelationType::ValueCount) && field.is_empty() {
        return Err(bad("a value_count correlation needs `condition.field`"));
    }
    let generate = match map.get("generate").or_else(|| doc.get("generate")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`generate` must be true or false")),
    };
    Ok(RawCorrelation {
        meta,
        kind,
        rules,
        group_by,
        timespan_ms,
        condition,
        extended_condition,
        field,
        aliases: parse_aliases(map.get("aliases"))?,
        generate,
    })
}

/// A string or a list of strings.
fn names(map: &Mapping, key: &'static str) -> Result<Vec<String>, ParseError> {
    let err = || bad(format!("`{key}` must be a string or a list of strings"));
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items.iter().map(|v| text(v).ok_or_else(err)).collect(),
        Some(v) => text(v).map(|s| vec![s]).ok_or_else(err),
    }
}

/// `30s`, `5m`, `1h`, `7d` (and `2w`) in milliseconds.
pub(crate) fn parse_timespan(text: &str) -> Result<i64, ParseError> {
    let invalid = || {
        bad(format!(
            "timespan `{text}` is not a positive number followed by s, m, h, d or w"
        ))
    };
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(invalid)?;
    let unit_ms: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 604_800_000,
        _ => return Err(invalid()),
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: i64 = digits.parse().map_err(|_| invalid())?;
    match count.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(invalid()),
    }
}

/// The comparisons of a condition mapping, all of which must hold (`{gt: 100, lte: 200}`).
fn parse_condition(map: &Mapping) -> Result<CountCondition, ParseError> {
    let mut terms = Vec::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .ok_or_else(|| bad("condition keys must be strings"))?;
        let op = match key {
            "gt" => CountOp::Gt,
            "gte" => CountOp::Gte,
            "lt" => CountOp::Lt,
            "lte" => CountOp::Lte,
            "eq" => CountOp::Eq,
            "neq" => CountOp::Neq,
            "field" => continue,
            other => {
                return Err(bad(format!(
                    "unknown condition `{other}` (expected gt, gte, lt, lte, eq, neq or field)"
                )));
            }
        };
        let threshold = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| bad(format!("condition `{key}` must be a whole number")))?;
        terms.push((op, threshold));
    }
    if terms.is_empty() {
        return Err(bad("condition needs one of gt, gte, lt, lte, eq, neq"));
    }
    Ok(CountCondition { terms })
}

fn parse_aliases(value: Option<&Value>) -> Result<Vec<Alias>, ParseError> {
    let err = || bad("`aliases` must map each alias to a mapping of rule name to field name");
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(err()),
    };
    map.iter()
        .map(|(name, fields)| {
            let name = name.as_str().ok_or_else(err)?.to_owned();
            let fields = fields
                .as_mapping()
                .ok_or_else(err)?
                .iter()
                .map(|(rule, field)| match (rule.as_str(), field.as_str()) {
                    (Some(r), Some(f)) => Ok((r.to_owned(), f.to_owned())),
                    _ => Err(err()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Alias { name, fields })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::parse::{Document, parse_documents};

    fn parse_one(text: &str) -> Result<RawCorrelation, String> {
        let docs = parse_documents(text);
        match docs.into_iter().next().map(|d| d.body) {
            Some(Ok(Document::Correlation(c))) => Ok(*c),
            Some(Ok(other)) => panic!("not a correlation: {other:?}"),
            Some(Err(e)) => Err(e.to_string()),
            None => panic!("no document"),
        }
    }

    #[test]
    fn every_attribute_is_read() {
        let c = parse_one(
            "title: t\nid: i\nname: n\nlevel: high\ngenerate: true\ncorrelation:
  type: value_count
  rules: [a, b]
  group-by: SourceIp
  timespan: 90s
  condition: {field: DestinationPort, gt: 10, lte: 20}
  aliases: {ip: {a: SourceIp, b: DestinationIp}}
",
        )
        .unwrap();
        assert_eq!(c.kind, Ok(CorrelationType::ValueCount));
        assert_eq!(c.rules, ["a", "b"]);
        assert_eq!(c.group_by, ["SourceIp"]);
        assert_eq!(c.timespan_ms, 90_000);
        assert_eq!(c.field, ["DestinationPort"]);
        let cond = c.condition.unwrap();
        assert!(!cond.holds(10) && cond.holds(11) && cond.holds(20) && !cond.holds(21));
        assert_eq!(c.aliases[0].field_for(&["b"]), Some("DestinationIp"));
        assert!(c.generate);
        assert_eq!(c.meta.name.as_deref(), Some("n"));
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("30s").unwrap(), 30_000);
        assert_eq!(parse_timespan("5m").unwrap(), 300_000);
        assert_eq!(parse_timespan("1h").unwrap(), 3_600_000);
        assert_eq!(parse_timespan("2d").unwrap(), 172_800_000);
        assert_eq!(parse_timespan("1w").unwrap(), 604_800_000);
        for bad in [
            "",
            "m",
            "5",
            "0s",
            "-1m",
            "1.5h",
            "5M",
            "99999999999999999999d",
            "5 m",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn temporal_without_condition_and_metric_types() {
        let c = parse_one(
            "title: t\ncorrelation: {type: temporal, rules: [a, b], group-by: [User], timespan: 5m}",
        )
        .unwrap();
        assert_eq!(c.kind, Ok(CorrelationType::Temporal));
        assert!(c.condition.is_none());
        let c = parse_one(
            "title: t\ncorrelation: {type: value_sum, rules: [a], group-by: [x], timespan: 1h, condition: {field: b, gt: 0.5}}",
        )
        .unwrap();
        assert_eq!(c.kind, Err("value_sum".to_owned()));
        let c = parse_one(
            "title: t\ncorrelation: {type: temporal, rules: [a, b], timespan: 5m, condition: a and b}",
        )
        .unwrap();
        assert_eq!(c.extended_condition.as_deref(), Some("a and b"));
    }

    #[test]
    fn broken_sections_say_why() {
        let cases = [
            ("correlation: 3", "must be a mapping"),
            (
                "correlation: {rules: [a], timespan: 1m}",
                "missing mandatory `type`",
            ),
            (
                "correlation: {type: nope, rules: [a], timespan: 1m}",
                "unknown correlation type",
            ),
            (
                "correlation: {type: temporal, timespan: 1m}",
                "at least one rule",
            ),
            (
                "correlation: {type: temporal, rules: [a]}",
                "missing mandatory `timespan`",
            ),
            (
                "correlation: {type: temporal, rules: [a], timespan: 1x}",
                "timespan `1x`",
            ),
            (
                "correlation: {type: event_count, rules: [a], timespan: 1m}",
                "missing mandatory `condition`",
            ),
            (
                "correlation: {type: event_count, rules: [a], timespan: 1m, condition: {gte: x}}",
                "whole number",
            ),
            (
                "correlation: {type: event_count, rules: [a], timespan: 1m, condition: {most: 3}}",
                "unknown condition `most`",
            ),
            (
                "correlation: {type: event_count, rules: [a], timespan: 1m, condition: {}}",
                "needs one of",
            ),
            (
                "correlation: {type: value_count, rules: [a], timespan: 1m, condition: {gte: 3}}",
                "needs `condition.field`",
            ),
            (
                "correlation: {type: temporal, rules: [a], timespan: 1m, generate: yes please}",
                "`generate`",
            ),
            (
                "correlation: {type: temporal, rules: [a], timespan: 1m, aliases: {x: 3}}",
                "`aliases`",
            ),
            (
                "correlation: {type: temporal, rules: [a], timespan: 1m, group-by: {a: b}}",
                "`group-by`",
            ),
        ];
        for (section, want) in cases {
            let err = parse_one(&format!("title: t\n{section}\n")).expect_err(section);
            assert!(err.contains(want), "{section}: {err}");
        }
    }
}
