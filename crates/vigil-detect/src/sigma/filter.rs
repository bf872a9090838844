//! Sigma global filters (filters specification 2.1.0): a detection that is added to other
//! rules to tune them.
//!
//! As pySigma does, the filter's condition is ANDed to each target rule's condition exactly as
//! written, so a filter that suppresses its selection says `condition: not selection`. A filter
//! applies to a rule it names (by id or name; `rules: any`, `all` or an empty list name every
//! rule) whose logsource lies inside the filter's (every category, product and service the
//! filter gives is the rule's too). Its fields are resolved through the target rule's field map.
//! A filter that applies to no loaded rule is reported not applicable, with the reason.

use serde_yaml::{Mapping, Value};
use vigil_ocsf::fieldmap::{FieldMaps, LogSource};

use crate::rule::{Rule, RuleStatus};
use crate::sigma::compile::{self, Resolver};
use crate::sigma::parse::{ParseError, RawMeta, format_logsource};
use crate::sigma::placeholders::Placeholders;

/// A global filter as written.
#[derive(Debug, Clone)]
pub(crate) struct RawFilter {
    pub(crate) meta: RawMeta,
    pub(crate) logsource: LogSource,
    /// The rules it names; empty means every rule of the logsource.
    pub(crate) rules: Vec<String>,
    /// The search identifiers and the condition, as a detection section.
    pub(crate) detection: Mapping,
}

fn bad(reason: impl Into<String>) -> ParseError {
    ParseError::Section {
        section: "filter",
        reason: reason.into(),
    }
}

/// Reads a `filter` section.
pub(crate) fn parse(
    meta: RawMeta,
    logsource: LogSource,
    section: &Value,
) -> Result<RawFilter, ParseError> {
    let map = section
        .as_mapping()
        .ok_or_else(|| bad("must be a mapping"))?;
    let rules = match map.get("rules") {
        None => return Err(bad("missing mandatory `rules` (use `any` for every rule)")),
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("any") || s.eq_ignore_ascii_case("all") =>
        {
            Vec::new()
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`rules` must be a list of rule ids or names"))?,
        Some(_) => return Err(bad("`rules` must be a list of rule ids or names")),
    };
    match map.get("condition") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(bad("`condition` must be a string")),
        None => return Err(bad("missing mandatory `condition`")),
    }
    let mut detection = map.clone();
    detection.remove("rules");
    if detection.len() < 2 {
        return Err(bad("needs a `selection` beside its `condition`"));
    }
    Ok(RawFilter {
        meta,
        logsource,
        rules,
        detection,
    })
}

/// Whether `inner` lies inside `outer`: every part `outer` names, `inner` names alike.
fn logsource_within(inner: &LogSource, outer: &LogSource) -> bool {
    let part = |o: &Option<String>, i: &Option<String>| match (o, i) {
        (None, _) => true,
        (Some(o), Some(i)) => o.eq_ignore_ascii_case(i),
        (Some(_), None) => false,
    };
    part(&outer.category, &inner.category)
        && part(&outer.product, &inner.product)
        && part(&outer.service, &inner.service)
}

impl RawFilter {
    /// Whether the filter names this rule (or names every rule).
    fn targets(&self, rule: &Rule) -> bool {
        self.rules.is_empty()
            || self
                .rules
                .iter()
                .any(|r| *r == rule.id || rule.name.as_deref() == Some(r.as_str()))
    }

    /// Adds the filter to every rule it applies to, and says what became of it.
    pub(crate) fn apply(
        &self,
        rules: &mut [Rule],
        maps: &FieldMaps,
        placeholders: &Placeholders,
    ) -> RuleStatus {
        if self.meta.declared_unsupported() {
            return RuleStatus::Unsupported("the filter declares `status: unsupported`".into());
        }
        let mut applied = 0;
        let mut skipped = Vec::new();
        for rule in rules.iter_mut().filter(|r| self.targets(r)) {
            if !logsource_within(&rule.logsource, &self.logsource) {
                skipped.push(format!(
                    "rule {} has logsource {}, outside the filter's {}",
                    rule.id,
                    format_logsource(&rule.logsource),
                    format_logsource(&self.logsource)
                ));
                continue;
            }
            let map = maps.view(&rule.logsource, rule.view.as_deref());
            let mut resolver = Resolver::new(map).with_placeholders(placeholders);
            let compiled = compile::compile(&self.detection, &mut resolver);
            let detection = match compiled {
                Err(e) if e.is_malformed() => return RuleStatus::Malformed(e.to_string()),
                Err(e) => return RuleStatus::Unsupported(e.to_string()),
                Ok(d) => d,
            };
            if let Some(field) = resolver.missing() {
                skipped.push(format!(
                    "field `{field}` has no OCSF mapping for rule {}'s logsource",
                    rule.id
                ));
                continue;
            }
            if let Some(name) = resolver.missing_placeholder() {
                return RuleStatus::NotApplicable(format!(
                    "placeholder `%{name}%` (modifier `expand`) has no values: define it in a \
                     `placeholders:` document among the rule files (docs/DETECTION.md)"
                ));
            }
            rule.detection.and_also(detection);
            applied += 1;
        }
        if applied > 0 {
            return RuleStatus::Loaded;
        }
        let mut reason = if self.rules.is_empty() {
            format!(
                "no loaded rule has logsource {}",
                format_logsource(&self.logsource)
            )
        } else {
            format!(
                "none of the rules it filters ({}) is loaded",
                self.rules.join(", ")
            )
        };
        if !skipped.is_empty() {
            reason = format!("{reason}: {}", skipped.join("; "));
        }
        RuleStatus::NotApplicable(reason)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use vigil_ocsf::Event;

    use super::*;
    use crate::RuleSet;

    fn maps() -> FieldMaps {
        FieldMaps::builtin().unwrap()
    }

    const RULES: &str = "
title: Curl
id: curl
name: curl_rule
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /curl}, condition: sel}
---
title: Wget
id: wget
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /wget}, condition: sel}
";

    fn launch(image: &str, user: &str) -> Event {
        Event::from_value(json!({
            "class_uid": 1007, "activity_id": 1, "time": 1,
            "process": {"file": {"path": image}, "user": {"name": user}}
        }))
        .unwrap()
    }

    fn fired(text: &str, image: &str, user: &str) -> Vec<String> {
        let (rules, reports) = RuleSet::from_yaml_str(text, Path::new("f.yml"), &maps());
        assert!(
            reports
                .iter()
                .all(|r| r.status == RuleStatus::Loaded || r.id.as_deref() == Some("skip")),
            "{reports:?}"
        );
        let set = RuleSet::new(rules);
        set.matches(&launch(image, user))
            .map(|r| r.id.clone())
            .collect()
    }

    #[test]
    fn a_filter_suppresses_the_rules_it_names() {
        let text = format!(
            "{RULES}---
title: Deploy bot
logsource: {{category: process_creation, product: linux}}
filter:
    rules: [curl_rule]
    selection: {{User: deploy}}
    condition: not selection
"
        );
        assert_eq!(fired(&text, "/usr/bin/curl", "alice"), ["curl"]);
        assert!(fired(&text, "/usr/bin/curl", "deploy").is_empty());
        assert_eq!(fired(&text, "/usr/bin/wget", "deploy"), ["wget"]);
    }

    #[test]
    fn a_filter_for_any_rule_of_a_logsource() {
        let text = format!(
            "{RULES}---
title: Deploy bot
logsource: {{product: linux}}
filter:
    rules: any
    selection: {{User: deploy}}
    condition: not selection
"
        );
        assert!(fired(&text, "/usr/bin/curl", "deploy").is_empty());
        assert!(fired(&text, "/usr/bin/wget", "deploy").is_empty());
        assert_eq!(fired(&text, "/usr/bin/wget", "bob"), ["wget"]);
    }

    #[test]
    fn filters_that_apply_to_nothing_say_why() {
        let cases = [
            (
                "logsource: {category: process_creation, product: linux}\nfilter: {rules: [nope], selection: {User: x}, condition: not selection}",
                "none of the rules it filters (nope) is loaded",
            ),
            (
                "logsource: {category: network_connection, product: linux}\nfilter: {rules: [curl], selection: {User: x}, condition: not selection}",
                "outside the filter's",
            ),
            (
                "logsource: {product: windows}\nfilter: {rules: any, selection: {User: x}, condition: not selection}",
                "no loaded rule has logsource product=windows",
            ),
            (
                "logsource: {category: process_creation, product: linux}\nfilter: {rules: [curl], selection: {NoSuchField: x}, condition: not selection}",
                "`NoSuchField` has no OCSF mapping",
            ),
        ];
        for (body, want) in cases {
            let text = format!("{RULES}---\ntitle: F\nid: skip\n{body}\n");
            let (_, reports) = RuleSet::from_yaml_str(&text, Path::new("f.yml"), &maps());
            let status = &reports[2].status;
            assert!(
                matches!(status, RuleStatus::NotApplicable(r) if r.contains(want)),
                "{body}: {status:?}"
            );
        }
        let text = format!(
            "{RULES}---\ntitle: F\nlogsource: {{product: linux}}\nfilter: {{rules: any, selection: {{User: x}}, condition: not nothing}}\n"
        );
        let (_, reports) = RuleSet::from_yaml_str(&text, Path::new("f.yml"), &maps());
        assert!(matches!(&reports[2].status, RuleStatus::Malformed(r) if r.contains("`nothing`")));
    }

    #[test]
    fn broken_filters_are_malformed() {
        for (body, want) in [
            ("filter: {selection: {User: x}, condition: sel}", "`rules`"),
            ("filter: {rules: [a], selection: {User: x}}", "`condition`"),
            ("filter: {rules: [a], condition: sel}", "`selection`"),
            (
                "filter: {rules: 3, selection: {User: x}, condition: sel}",
                "`rules`",
            ),
        ] {
            let text = format!("title: F\nlogsource: {{product: linux}}\n{body}\n");
            let (_, reports) = RuleSet::from_yaml_str(&text, Path::new("f.yml"), &maps());
            assert!(
                matches!(&reports[0].status, RuleStatus::Malformed(r) if r.contains(want)),
                "{body}: {:?}",
                reports[0].status
            );
        }
    }
}
