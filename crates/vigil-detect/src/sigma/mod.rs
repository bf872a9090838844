//! Sigma rules: parsing, condition language, modifiers and compilation to [`Rule`]s; global
//! filters; correlation rules.
//!
//! A detection rule document goes through four checks, and its status is the first that fails
//! (a rule that declares Sigma `status: unsupported` is reported unsupported at once):
//! it must be a valid rule ([`RuleStatus::Malformed`]); its logsource must have an OCSF field
//! map ([`RuleStatus::NotApplicable`]); it must use only what Vigil implements
//! ([`RuleStatus::Unsupported`]); and every field it names must be in the map
//! ([`RuleStatus::NotApplicable`]). The detection is compiled even when the logsource has no
//! map, so malformed rules are found in every logsource.
//!
//! Loading has two phases. Every file is read first ([`Loader::load_text`]); then
//! [`Loader::finish`] applies the global filters and resolves the correlation rules, whose
//! references (by id or `name`) may point into any file.

mod compile;
mod condition;
pub(crate) mod correlation;
mod field;
pub(crate) mod filter;
mod modifiers;
mod parse;
pub(crate) mod placeholders;
mod resolve;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vigil_ocsf::Severity;
use vigil_ocsf::fieldmap::FieldMaps;

use crate::attack::attacks_from_tags;
use crate::correlation::CorrelationRule;
use crate::rule::{Rule, RuleReport, RuleStatus};
use compile::Resolver;
use correlation::RawCorrelation;
use filter::RawFilter;
use parse::{Document, ParsedDoc, RawRule};
use placeholders::Placeholders;

/// A correlation rule read in the first phase, resolved in the second.
#[derive(Debug)]
pub(crate) struct PendingCorrelation {
    pub(crate) raw: RawCorrelation,
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    /// Its entry in the reports.
    pub(crate) report: usize,
}

/// Accumulates rules and reports across files, refusing a second rule with an id already
/// loaded.
#[derive(Debug, Default)]
pub(crate) struct Loader {
    pub(crate) rules: Vec<Rule>,
    pub(crate) reports: Vec<RuleReport>,
    /// The `name` of each reported document, beside `reports`.
    names: Vec<Option<String>>,
    seen: HashMap<String, PathBuf>,
    correlations: Vec<PendingCorrelation>,
    filters: Vec<(RawFilter, usize)>,
    placeholders: Placeholders,
    /// Rules that use `expand`, compiled by `finish` once every placeholder is known.
    deferred: Vec<Deferred>,
}

/// A rule that waits for the placeholders of every file.
#[derive(Debug)]
struct Deferred {
    raw: RawRule,
    path: PathBuf,
    id: String,
    logsource: String,
    report: usize,
}

/// What loading made of a corpus.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) rules: Vec<Rule>,
    pub(crate) correlations: Vec<CorrelationRule>,
    pub(crate) reports: Vec<RuleReport>,
    pub(crate) placeholders: Placeholders,
}

impl Loader {
    /// Reads every document of one file's text.
    pub(crate) fn load_text(&mut self, text: &str, path: &Path, maps: &FieldMaps) {
        let docs = parse::parse_documents(text);
        let many = docs.len() > 1;
        for (index, doc) in docs.into_iter().enumerate() {
            let ParsedDoc {
                header,
                mut logsource,
                body,
            } = doc;
            match &body {
                // Correlations have no logsource; reports group them under one heading.
                Ok(Document::Correlation(_)) => logsource = "correlation".to_owned(),
                Ok(Document::Placeholders(_)) => logsource = "placeholders".to_owned(),
                _ => {}
            }
            let report = self.reports.len();
            let fallback_id = || fallback_id(path, many.then_some(index));
            let status = match body {
                Err(e) => RuleStatus::Malformed(e.to_string()),
                Ok(Document::Correlation(raw)) => {
                    let id = raw.meta.id.clone().unwrap_or_else(fallback_id);
                    match self.claim(&id, path) {
                        Err(status) => status,
                        Ok(()) => {
                            self.correlations.push(PendingCorrelation {
                                raw: *raw,
                                id,
                                path: path.to_owned(),
                                report,
                            });
                            // Settled by `finish`.
                            RuleStatus::Loaded
                        }
                    }
                }
                Ok(Document::Filter(raw)) => {
                    self.filters.push((*raw, report));
                    RuleStatus::Loaded
                }
                Ok(Document::Collection(action)) => RuleStatus::Unsupported(format!(
                    "Sigma 1 rule collections (`action: {action}`) are not supported"
                )),
                Ok(Document::Placeholders(defined)) => {
                    let mut status = RuleStatus::Loaded;
                    for (name, values) in defined {
                        if let Err(why) = self.placeholders.define(name, values, path) {
                            status = RuleStatus::Malformed(why);
                        }
                    }
                    status
                }
                Ok(Document::Rule(raw)) if placeholders::uses_expand(&raw.detection) => {
                    let id = raw.meta.id.clone().unwrap_or_else(fallback_id);
                    match self.claim(&id, path) {
                        Err(status) => status,
                        Ok(()) => {
                            self.deferred.push(Deferred {
                                raw: *raw,
                                path: path.to_owned(),
                                id,
                                logsource: logsource.clone(),
                                report,
                            });
                            // Settled by `finish`.
                            RuleStatus::Loaded
                        }
                    }
                }
                Ok(Document::Rule(raw)) => {
                    let built = build(*raw, path, fallback_id(), &logsource, maps, None);
                    match built {
                        Ok(variants) => self.admit(variants),
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
            self.names.push(header.name);
        }
    }

    /// Reserves a rule id, or says which file has it already.
    fn claim(&mut self, id: &str, path: &Path) -> Result<(), RuleStatus> {
        if let Some(first) = self.seen.get(id) {
            return Err(RuleStatus::Malformed(format!(
                "duplicate rule id {id} (first loaded from {})",
                first.display()
            )));
        }
        self.seen.insert(id.to_owned(), path.to_owned());
        Ok(())
    }

    /// Keeps a built rule (its variants, one per view) unless its id is taken.
    fn admit(&mut self, variants: Vec<Rule>) -> RuleStatus {
        let Some(first) = variants.first() else {
            return RuleStatus::NotApplicable("no view of its logsource applies".into());
        };
        match self.claim(&first.id, &first.path) {
            Ok(()) => {
                self.rules.extend(variants);
                RuleStatus::Loaded
            }
            Err(status) => status,
        }
    }

    /// Compiles the rules that use `expand`, applies the global filters and resolves the
    /// correlation rules.
    pub(crate) fn finish(mut self, maps: &FieldMaps) -> Loaded {
        for d in std::mem::take(&mut self.deferred) {
            let built = build(
                d.raw,
                &d.path,
                d.id,
                &d.logsource,
                maps,
                Some(&self.placeholders),
            );
            let status = match built {
                // The id was claimed when the rule was read.
                Ok(variants) => {
                    self.rules.extend(variants);
                    RuleStatus::Loaded
                }
                Err(status) => status,
            };
            if let Some(r) = self.reports.get_mut(d.report) {
                r.status = status;
            }
        }
        for (filter, report) in &self.filters {
            let status = filter.apply(&mut self.rules, maps, &self.placeholders);
            if let Some(r) = self.reports.get_mut(*report) {
                r.status = status;
            }
        }
        let known = resolve::Known {
            reports: &self.reports,
            names: &self.names,
        };
        let (correlations, statuses) =
            resolve::resolve(&self.correlations, &mut self.rules, &known, maps);
        for (report, status) in statuses {
            if let Some(r) = self.reports.get_mut(report) {
                r.status = status;
            }
        }
        Loaded {
            rules: self.rules,
            correlations,
            reports: self.reports,
            placeholders: self.placeholders,
        }
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

/// Compiles one rule document, once for each view of its logsource it applies to (variants
/// sharing its id, the primary view's first), or says why it cannot be used: the primary view's
/// reason when no view takes it. `placeholders` are given to rules that use `expand`.
fn build(
    raw: RawRule,
    path: &Path,
    fallback_id: String,
    logsource: &str,
    maps: &FieldMaps,
    placeholders: Option<&Placeholders>,
) -> Result<Vec<Rule>, RuleStatus> {
    if raw.meta.declared_unsupported() {
        return Err(RuleStatus::Unsupported(
            "the rule declares `status: unsupported`".into(),
        ));
    }
    let mut views = maps.views(&raw.logsource).peekable();
    if views.peek().is_none() {
        // Compiled anyway, so a malformed rule is reported as such in every logsource.
        let compiled = compile::compile(&raw.detection, &mut Resolver::new(None));
        return Err(match compiled {
            Err(e) if e.is_malformed() => RuleStatus::Malformed(e.to_string()),
            _ => {
                RuleStatus::NotApplicable(format!("logsource {logsource} has no OCSF mapping yet"))
            }
        });
    }
    let mut compiled = Vec::new();
    let mut refusal = None;
    for map in views {
        match compile_view(&raw, map, logsource, placeholders) {
            Ok(Some(detection)) => compiled.push((map, detection)),
            Ok(None) => {}
            Err(status @ RuleStatus::Malformed(_)) => return Err(status),
            Err(status) => {
                refusal.get_or_insert(status);
            }
        }
    }
    // A view where the rule can never match (its record type is another view's, or one Vigil
    // does not produce) is dropped; a rule no view can match is not applicable.
    compiled.retain(|(_, d)| d.fixed() != Some(false));
    let mut compiled = compiled.into_iter();
    let Some((map, detection)) = compiled.next() else {
        return Err(refusal.unwrap_or_else(|| {
            RuleStatus::NotApplicable(format!(
                "no view of logsource {logsource} has the records the rule tests (its \
                 constant fields, such as auditd `type` or `SYSCALL`, never hold for Vigil's \
                 events)"
            ))
        }));
    };
    let meta = raw.meta;
    let first = Rule {
        id: meta.id.unwrap_or(fallback_id),
        name: meta.name,
        attacks: attacks_from_tags(&meta.tags),
        title: meta.title,
        description: meta.description,
        level: meta.level.unwrap_or(Severity::Medium),
        tags: meta.tags,
        path: path.to_owned(),
        author: meta.author,
        sigma_status: meta.status,
        references: meta.references,
        falsepositives: meta.falsepositives,
        logsource: raw.logsource,
        view: map.view.clone(),
        class_uid: map.class_uid,
        activity_id: map.activity_id,
        standalone: true,
        exclude: map.exclude.clone(),
        include: map.include.clone(),
        detection,
    };
    let mut variants = Vec::with_capacity(1 + compiled.len());
    for (map, detection) in compiled {
        variants.push(Rule {
            view: map.view.clone(),
            class_uid: map.class_uid,
            activity_id: map.activity_id,
            exclude: map.exclude.clone(),
            include: map.include.clone(),
            detection,
            ..first.clone()
        });
    }
    variants.insert(0, first);
    Ok(variants)
}

/// Compiles a rule's detection for one view: `Ok(None)` when the view is closed and the
/// detection, with the view's absent fields, no longer depends on the event.
fn compile_view(
    raw: &RawRule,
    map: &vigil_ocsf::fieldmap::FieldMap,
    logsource: &str,
    placeholders: Option<&Placeholders>,
) -> Result<Option<crate::detection::Detection>, RuleStatus> {
    let none = Placeholders::default();
    let mut resolver = Resolver::new(Some(map)).with_placeholders(placeholders.unwrap_or(&none));
    let detection = compile::compile(&raw.detection, &mut resolver).map_err(|e| {
        if e.is_malformed() {
            RuleStatus::Malformed(e.to_string())
        } else {
            RuleStatus::Unsupported(e.to_string())
        }
    })?;
    if let Some(field) = resolver.missing() {
        return Err(RuleStatus::NotApplicable(format!(
            "field `{field}` has no OCSF mapping for logsource {logsource}"
        )));
    }
    if let Some(name) = resolver.missing_placeholder() {
        return Err(RuleStatus::NotApplicable(format!(
            "placeholder `%{name}%` (modifier `expand`) has no values: define it in a \
             `placeholders:` document among the rule files (docs/DETECTION.md)"
        )));
    }
    if map.closed && detection.fixed().is_some() {
        return Ok(None);
    }
    Ok(Some(detection))
}
