//! A set of compiled rules, indexed by OCSF class and by literal, and loading it from
//! directories.

mod files;
mod gate;
mod matches;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

use crate::correlation::CorrelationRule;
use crate::correlation::rule::Correlations;
use crate::lookup::{PathTrie, SlotAssigner};
use crate::prefilter::{Prefilter, PrefilterStats};
use crate::reader::Wanted;
use crate::rule::{LoadReport, Rule, RuleReport};
use crate::sigma::placeholders::Placeholders;
use crate::sigma::{Loaded, Loader};
use matches::Matches;

/// Why rules could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A rule directory (or one below it) is missing or unreadable.
    #[error("cannot read rule directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The rules of one OCSF class.
#[derive(Debug, Clone)]
pub(crate) struct ClassIndex {
    pub(crate) class_uid: u32,
    /// Indices into the set's rules, in load order.
    pub(crate) rules: Box<[usize]>,
    pub(crate) prefilter: Prefilter,
    /// The paths the prefilter scans and the gates read: fetched in one walk of each event.
    /// (The other paths the rules read have slots too, after these, and are looked up when a
    /// candidate first reads them: most events have no candidate.)
    pub(crate) paths: PathTrie,
    /// Every path the class's rules read (prefilter, detections, gates), with its slot.
    #[cfg(test)]
    pub(crate) slotted: PathTrie,
}

/// Compiled rules, indexed by OCSF class and by the literals they need, so an event only
/// visits the rules that can apply; and the correlation rules over them.
///
/// `Send + Sync` and immutable: share it with an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// A handful of classes, so a linear scan beats hashing.
    classes: Box<[ClassIndex]>,
    gates: gate::Gates,
    correlations: Arc<Correlations>,
    placeholders: Arc<Placeholders>,
    /// Every path an evaluation reads ([`RuleSet::read_event`]).
    wanted: Arc<Wanted>,
}

impl RuleSet {
    /// A set of already compiled detection rules, in the given order, without correlations.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self::build(rules, Vec::new())
    }

    fn build(mut rules: Vec<Rule>, correlations: Vec<CorrelationRule>) -> Self {
        let mut by_class: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match by_class
                .iter_mut()
                .find(|(class, _)| *class == rule.class_uid)
            {
                Some((_, indices)) => indices.push(i),
                None => by_class.push((rule.class_uid, vec![i])),
            }
        }
        // Each class numbers its own paths: the scanned ones first (slot i is scanned path
        // i), then the gates', then the detections'. The first two are fetched for every
        // event; the others are looked up when a candidate first reads them.
        let mut classes: Vec<ClassIndex> = Vec::with_capacity(by_class.len());
        let mut slots: Vec<(u32, SlotAssigner)> = Vec::with_capacity(by_class.len());
        for (class_uid, indices) in by_class {
            let members: Vec<&Rule> = indices.iter().filter_map(|&i| rules.get(i)).collect();
            let mut prefilter = Prefilter::build(&members);
            let mut assigner = SlotAssigner::default();
            prefilter.assign_slots(&mut assigner);
            slots.push((class_uid, assigner));
            classes.push(ClassIndex {
                class_uid,
                prefilter,
                rules: indices.into_boxed_slice(),
                paths: PathTrie::default(),
                #[cfg(test)]
                slotted: PathTrie::default(),
            });
        }
        let gates = gate::Gates::build(&rules, &mut slots);
        let mut wanted = Wanted::envelope();
        for (class, (_, assigner)) in classes.iter_mut().zip(&mut slots) {
            class.paths = assigner.trie().clone();
            for &i in class.rules.iter() {
                if let Some(rule) = rules.get_mut(i) {
                    rule.detection.assign_slots(assigner);
                }
            }
            // Every path of the class, slotted or not (past the table's size).
            for segments in assigner.slots.keys() {
                wanted.add(segments.iter());
            }
            #[cfg(test)]
            {
                class.slotted = assigner.trie().clone();
            }
        }
        for correlation in &correlations {
            for path in correlation.read_paths() {
                wanted.add(path.segments());
            }
        }
        Self {
            rules,
            classes: classes.into_boxed_slice(),
            gates,
            correlations: Arc::new(Correlations::new(correlations)),
            placeholders: Arc::default(),
            wanted: Arc::new(wanted),
        }
    }

    fn from_loaded(loaded: Loaded) -> (Self, LoadReport) {
        let report = LoadReport {
            rules: loaded.reports,
        };
        let mut set = Self::build(loaded.rules, loaded.correlations);
        set.placeholders = Arc::new(loaded.placeholders);
        (set, report)
    }

    /// Loads every `*.yml` / `*.yaml` file under each directory (recursively, in sorted order;
    /// symbolic links to files are followed, to directories not): detection rules, global
    /// filters and correlation rules, whose references may cross files. A file or rule that
    /// cannot be used is reported in the [`LoadReport`], never fatal; a missing or unreadable
    /// directory is fatal. Two rules with the same id: the second is reported malformed.
    pub fn load_dirs(
        dirs: &[PathBuf],
        maps: &FieldMaps,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let mut paths = Vec::new();
        for dir in dirs {
            files::collect_rule_files(dir, &mut paths)?;
        }
        let mut loader = Loader::default();
        for file in paths {
            match fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => loader.load_text(&text, &file, maps),
                    Err(_) => loader
                        .reports
                        .push(files::file_problem(&file, "file is not UTF-8")),
                },
                Err(e) => loader.reports.push(files::file_problem(
                    &file,
                    &format!("cannot read file: {e}"),
                )),
            }
        }
        Ok(Self::from_loaded(loader.finish(maps)))
    }

    /// Loads the rules of one file's text (detection rules, filters and correlations), as
    /// [`RuleSet::load_dirs`] does for each file. `path` is recorded in the rules and reports
    /// and names rules without an id.
    pub fn load_str(text: &str, path: &Path, maps: &FieldMaps) -> (RuleSet, LoadReport) {
        let mut loader = Loader::default();
        loader.load_text(text, path, maps);
        Self::from_loaded(loader.finish(maps))
    }

    /// Compiles the detection rules of one file's text, as [`RuleSet::load_dirs`] does for
    /// each file. `path` is recorded in the rules and reports and names rules without an id.
    /// Correlation rules are resolved and reported but not returned: use
    /// [`RuleSet::load_str`] to keep them.
    pub fn from_yaml_str(
        text: &str,
        path: &Path,
        maps: &FieldMaps,
    ) -> (Vec<Rule>, Vec<RuleReport>) {
        let mut loader = Loader::default();
        loader.load_text(text, path, maps);
        let loaded = loader.finish(maps);
        (loaded.rules, loaded.reports)
    }

    /// The `expand` placeholders the rules were loaded with, as a `placeholders:` YAML
    /// document (`None` when there were none): appended to the text of a rule that uses them,
    /// it lets another loader (an agent compiling its policy) compile the rule alike.
    pub fn placeholders_yaml(&self) -> Option<String> {
        (!self.placeholders.is_empty()).then(|| self.placeholders.to_yaml())
    }

    /// Number of detection rules (a rule compiled for several views counts once).
    pub fn len(&self) -> usize {
        let mut previous: Option<&str> = None;
        self.rules
            .iter()
            .filter(|r| previous.replace(r.id.as_str()) != Some(r.id.as_str()))
            .count()
    }

    /// Whether the set has no detection rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// All compiled detection rules, in load order. A rule that applies to several views of its
    /// logsource (the auditd view's exec and file records) is here once per view: variants
    /// sharing the id, next to each other.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The correlation rules, each after the correlations it refers to.
    pub fn correlations(&self) -> &[Arc<CorrelationRule>] {
        &self.correlations.rules
    }

    pub(crate) fn correlation_index(&self) -> Arc<Correlations> {
        Arc::clone(&self.correlations)
    }

    /// Every rule whose match is a finding of its own ([`Rule::standalone`]) and that
    /// matches the event, in load order. Only rules of the event's class whose literals occur
    /// in the event are evaluated, each attribute is looked up once for all of them, and
    /// nothing is allocated (after a thread's first call).
    pub fn matches<'a>(&'a self, event: &Event) -> impl Iterator<Item = &'a Rule> {
        Matches::new(self, event, true)
    }

    /// Every rule that matches the event, in load order, including the base rules that only
    /// feed correlations: what a [`crate::Correlator`] is fed.
    pub fn matches_all<'a>(&'a self, event: &Event) -> impl Iterator<Item = &'a Rule> {
        Matches::new(self, event, false)
    }

    /// Parses an event's JSON keeping only the attributes the rules, their correlations and
    /// the behaviour baseline read (and the envelope): [`RuleSet::matches`] and an
    /// [`crate::Evaluator`] give the same answers for it as for the whole event, for a
    /// fraction of the parsing. Accepts and refuses exactly what [`Event::from_json`] does.
    /// Findings need the whole document for their evidence:
    /// [`crate::Evaluator::evaluate_json`] parses it again when a finding is raised.
    pub fn read_event(&self, bytes: &[u8]) -> Result<Event, vigil_ocsf::EventError> {
        self.wanted.read(bytes)
    }

    /// The part of any JSON document [`RuleSet::read_event`] keeps, before the envelope is
    /// checked (for a caller that names or converts documents first, as `vigil rules eval`
    /// does). Refuses what is not JSON.
    pub fn read_document(&self, bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
        self.wanted.read_document(bytes)
    }

    /// What the literal prefilter made of the rules, summed over classes.
    pub fn prefilter_stats(&self) -> PrefilterStats {
        self.classes
            .iter()
            .map(|c| c.prefilter.stats())
            .fold(PrefilterStats::default(), |a, b| PrefilterStats {
                rules: a.rules + b.rules,
                always_evaluated: a.always_evaluated + b.always_evaluated,
                literals: a.literals + b.literals,
                attributes: a.attributes + b.attributes,
                automata: a.automata + b.automata,
                automaton_bytes: a.automaton_bytes + b.automaton_bytes,
            })
    }

    pub(crate) fn class(&self, class_uid: u32) -> Option<&ClassIndex> {
        self.classes.iter().find(|c| c.class_uid == class_uid)
    }
}

#[cfg(test)]
mod tests;
