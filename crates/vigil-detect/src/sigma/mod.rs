//! Sigma rules: parsing, condition language, modifiers and compilation to [`Rule`]s.
//!
//! A rule document goes through four checks, and its status is the first that fails
//! (a rule that declares Sigma `status: unsupported` is reported unsupported at once):
//! it must be a valid rule ([`RuleStatus::Malformed`]); its logsource must have an OCSF field
//! map ([`RuleStatus::NotApplicable`]); it must use only what Vigil implements
//! ([`RuleStatus::Unsupported`]); and every field it names must be in the map
//! ([`RuleStatus::NotApplicable`]). The detection is compiled even when the logsource has no
//! map, so malformed rules are found in every logsource.

mod compile;
mod condition;
mod field;
mod modifiers;
mod parse;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vigil_ocsf::Severity;
use vigil_ocsf::fieldmap::FieldMaps;

use crate::attack::attacks_from_tags;
use crate::rule::{Rule, RuleReport, RuleStatus};
use compile::Resolver;
use parse::{Document, ParsedDoc, RawRule};

/// Accumulates rules and reports across files, refusing a second rule with an id already
/// loaded.
#[derive(Debug, Default)]
pub(crate) struct Loader {
    pub(crate) rules: Vec<Rule>,
    pub(crate) reports: Vec<RuleReport>,
    seen: HashMap<String, PathBuf>,
}

impl Loader {
    /// Loads every document of one file's text.
    pub(crate) fn load_text(&mut self, text: &str, path: &Path, maps: &FieldMaps) {
        let docs = parse::parse_documents(text);
        let many = docs.len() > 1;
        for (index, doc) in docs.into_iter().enumerate() {
            let ParsedDoc {
                header,
                logsource,
                body,
            } = doc;
            let status = match body {
                Err(e) => RuleStatus::Malformed(e.to_string()),
                Ok(Document::Correlation) => {
                    RuleStatus::Unsupported("correlation rules are not supported yet".into())
                }
                Ok(Document::Filter) => {
                    RuleStatus::Unsupported("Sigma filters are not supported yet".into())
                }
                Ok(Document::Collection(action)) => RuleStatus::Unsupported(format!(
                    "Sigma 1 rule collections (`action: {action}`) are not supported"
                )),
                Ok(Document::Rule(raw)) => {
                    let fallback_id = fallback_id(path, many.then_some(index));
                    match build(*raw, path, fallback_id, &logsource, maps) {
                        Ok(rule) => self.admit(rule),
                        Err(status) => status,
                    }
                }
            };
            self.reports.push(RuleReport {
                path: path.to_owned(),
                id: header.id,
                title: header.title,
                logsource,
                status,
            });
        }
    }

    /// Keeps a built rule unless its id is taken.
    fn admit(&mut self, rule: Rule) -> RuleStatus {
        if let Some(first) = self.seen.get(&rule.id) {
            return RuleStatus::Malformed(format!(
                "duplicate rule id {} (first loaded from {})",
                rule.id,
                first.display()
            ));
        }
        self.seen.insert(rule.id.clone(), rule.path.clone());
        self.rules.push(rule);
        RuleStatus::Loaded
    }
}

/// The id given to a rule without one: its file stem, with `#n` for the n-th document.
fn fallback_id(path: &Path, index: Option<usize>) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    match index {
        Some(i) => format!("{stem}#{i}"),
        None => stem,
    }
}

/// Compiles one rule document, or says why it cannot be used.
fn build(
    raw: RawRule,
    path: &Path,
    fallback_id: String,
    logsource: &str,
    maps: &FieldMaps,
) -> Result<Rule, RuleStatus> {
    // Sigma: "`unsupported`: the rule cannot be used in its current state".
    if raw
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("unsupported"))
    {
        return Err(RuleStatus::Unsupported(
            "the rule declares `status: unsupported`".into(),
        ));
    }
    let map = maps.for_logsource(&raw.logsource);
    let mut resolver = Resolver::new(map);
    let compiled = compile::compile(&raw.detection, &mut resolver);
    if let Err(e) = &compiled
        && e.is_malformed()
    {
        return Err(RuleStatus::Malformed(e.to_string()));
    }
    let Some(map) = map else {
        return Err(RuleStatus::NotApplicable(format!(
            "logsource {logsource} has no OCSF mapping yet"
        )));
    };
    let detection = compiled.map_err(|e| RuleStatus::Unsupported(e.to_string()))?;
    if let Some(field) = resolver.missing() {
        return Err(RuleStatus::NotApplicable(format!(
            "field `{field}` has no OCSF mapping for logsource {logsource}"
        )));
    }
    Ok(Rule {
        id: raw.id.unwrap_or(fallback_id),
        attacks: attacks_from_tags(&raw.tags),
        title: raw.title,
        description: raw.description,
        level: raw.level.unwrap_or(Severity::Medium),
        tags: raw.tags,
        path: path.to_owned(),
        author: raw.author,
        sigma_status: raw.status,
        references: raw.references,
        falsepositives: raw.falsepositives,
        logsource: raw.logsource,
        class_uid: map.class_uid,
        activity_id: map.activity_id,
        detection,
    })
}
