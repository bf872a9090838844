//! A set of compiled rules, indexed by OCSF class, and loading it from directories.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

use crate::lookup::{Lookups, SlotAssigner};
use crate::rule::{LoadReport, Rule, RuleReport, RuleStatus, activity_of};
use crate::sigma::Loader;

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

/// Compiled rules, indexed by OCSF class so an event only visits the rules that can apply.
///
/// `Send + Sync` and immutable: share it with an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Per OCSF class, the indices of its rules in load order. A handful of classes, so a
    /// linear scan beats hashing.
    by_class: Box<[(u32, Box<[usize]>)]>,
}

impl RuleSet {
    /// A set of already compiled rules, in the given order.
    pub fn new(mut rules: Vec<Rule>) -> Self {
        let mut slots = SlotAssigner::default();
        let mut by_class: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, rule) in rules.iter_mut().enumerate() {
            rule.detection.assign_slots(&mut slots);
            match by_class
                .iter_mut()
                .find(|(class, _)| *class == rule.class_uid)
            {
                Some((_, indices)) => indices.push(i),
                None => by_class.push((rule.class_uid, vec![i])),
            }
        }
        Self {
            rules,
            by_class: by_class
                .into_iter()
                .map(|(class, v)| (class, v.into_boxed_slice()))
                .collect(),
        }
    }

    /// Loads every `*.yml` / `*.yaml` file under each directory (recursively, in sorted order;
    /// symbolic links to files are followed, to directories not). A file or rule that cannot be
    /// used is reported in the [`LoadReport`], never fatal; a missing or unreadable directory
    /// is fatal. Two rules with the same id: the second is reported malformed.
    pub fn load_dirs(
        dirs: &[PathBuf],
        maps: &FieldMaps,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let mut files = Vec::new();
        for dir in dirs {
            collect_rule_files(dir, &mut files)?;
        }
        let mut loader = Loader::default();
        for file in files {
            match fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => loader.load_text(&text, &file, maps),
                    Err(_) => loader
                        .reports
                        .push(file_problem(&file, "file is not UTF-8")),
                },
                Err(e) => loader
                    .reports
                    .push(file_problem(&file, &format!("cannot read file: {e}"))),
            }
        }
        let report = LoadReport {
            rules: loader.reports,
        };
        Ok((RuleSet::new(loader.rules), report))
    }

    /// Compiles the rules of one file's text, as [`RuleSet::load_dirs`] does for each file.
    /// `path` is recorded in the rules and reports and names rules without an id.
    pub fn from_yaml_str(
        text: &str,
        path: &Path,
        maps: &FieldMaps,
    ) -> (Vec<Rule>, Vec<RuleReport>) {
        let mut loader = Loader::default();
        loader.load_text(text, path, maps);
        (loader.rules, loader.reports)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// All rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every rule that matches the event, in load order. Only rules of the event's class are
    /// visited, each attribute of the event is looked up once for all of them, and nothing is
    /// allocated.
    pub fn matches<'a>(&'a self, event: &Event) -> impl Iterator<Item = &'a Rule> {
        let candidates: &'a [usize] = self
            .by_class
            .iter()
            .find(|(class, _)| *class == event.class_uid)
            .map_or(&[], |(_, v)| &v[..]);
        let activity = activity_of(event);
        let mut lookups = Lookups::new(&event.data);
        candidates
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .filter(move |rule| {
                rule.applies_to_activity(activity) && rule.detection.is_match_in(&mut lookups)
            })
    }
}

fn file_problem(path: &Path, reason: &str) -> RuleReport {
    RuleReport {
        path: path.to_owned(),
        id: None,
        title: None,
        logsource: String::new(),
        status: RuleStatus::Malformed(reason.to_owned()),
    }
}

/// Appends the rule files under `dir`, sorted by path at each level.
fn collect_rule_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let dir_error = |source| LoadError::Dir {
        path: dir.to_owned(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(dir_error)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(dir_error)?;
    entries.sort();
    for path in entries {
        let is_rule_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => collect_rule_files(&path, out)?,
            // A symbolic link is followed to a file, never to a directory (no cycles).
            Ok(meta) if meta.file_type().is_symlink() => {
                let to_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
                if is_rule_file && !to_dir {
                    out.push(path);
                }
            }
            // Unreadable entries that look like rules are kept, so reading them reports why.
            _ if is_rule_file => out.push(path),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULE: &str = "
title: Base64 decode
id: r1
logsource: {category: process_creation, product: linux}
detection:
    selection:
        Image|endswith: /base64
        CommandLine|contains: -d
    condition: selection
level: low
";

    fn maps() -> FieldMaps {
        FieldMaps::builtin().unwrap()
    }

    fn event(activity: u8, image: &str, cmd: &str) -> Event {
        Event::from_value(json!({
            "class_uid": 1007, "activity_id": activity, "time": 1,
            "metadata": {"uid": "e1"},
            "process": {"file": {"path": image}, "cmd_line": cmd}
        }))
        .unwrap()
    }

    #[test]
    fn matches_filters_by_class_and_activity() {
        let (rules, reports) = RuleSet::from_yaml_str(RULE, Path::new("r.yml"), &maps());
        assert_eq!(reports[0].status, RuleStatus::Loaded);
        let set = RuleSet::new(rules);
        assert_eq!(set.len(), 1);
        let hit = event(1, "/usr/bin/base64", "base64 -d x");
        assert_eq!(set.matches(&hit).count(), 1);
        assert!(set.rules()[0].is_match(&hit));
        assert_eq!(
            set.matches(&event(2, "/usr/bin/base64", "base64 -d x"))
                .count(),
            0
        );
        assert_eq!(
            set.matches(&event(1, "/usr/bin/base64", "base64 x"))
                .count(),
            0
        );
        let mut other_class = hit.clone();
        other_class.class_uid = 1001;
        assert_eq!(set.matches(&other_class).count(), 0);
        assert!(!set.rules()[0].is_match(&other_class));
    }

    #[test]
    fn rule_set_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<RuleSet>();
    }

    #[test]
    fn load_dirs_walks_sorted_and_reports_problems() {
        let root = tempfile::tempdir().unwrap();
        let sub = root.path().join("b_sub");
        fs::create_dir(&sub).unwrap();
        fs::write(root.path().join("a.yml"), RULE).unwrap();
        fs::write(sub.join("c.yaml"), RULE.replace("id: r1", "id: r2")).unwrap();
        fs::write(sub.join("d.yml"), RULE).unwrap();
        fs::write(sub.join("e.yml"), "title: [").unwrap();
        fs::write(sub.join("f.yml"), [0xFFu8, 0xFE]).unwrap();
        fs::write(sub.join("notes.txt"), "not a rule").unwrap();
        let (set, report) = RuleSet::load_dirs(&[root.path().to_owned()], &maps()).unwrap();
        let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(report.rules.len(), 5);
        assert_eq!((report.loaded(), report.malformed()), (2, 3));
        let problems: Vec<String> = report
            .problems()
            .map(|p| p.status.reason().unwrap_or_default().to_owned())
            .collect();
        assert!(problems[0].contains("duplicate rule id r1"), "{problems:?}");
        assert!(problems[1].contains("invalid YAML"), "{problems:?}");
        assert!(problems[2].contains("not UTF-8"), "{problems:?}");
    }

    #[test]
    fn missing_directory_is_fatal() {
        let err =
            RuleSet::load_dirs(&[PathBuf::from("/nonexistent/vigil-rules")], &maps()).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/vigil-rules"),
            "{err}"
        );
    }

    #[test]
    fn statuses_for_unmapped_logsources_fields_and_other_documents() {
        let text = "
title: Auditd
id: a1
logsource: {product: linux, service: auditd}
detection: {sel: {type: EXECVE}, condition: sel}
---
title: Unmapped field
id: a2
logsource: {category: process_creation, product: linux}
detection: {sel: {TargetFilename: /x}, condition: sel}
---
title: Correlation
id: a3
correlation: {type: event_count, rules: [a1], group-by: [x], timespan: 1m, condition: {gte: 5}}
---
title: No id
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /x}, condition: sel}
---
title: Declared unsupported
status: unsupported
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /y}, condition: sel}
";
        let (rules, reports) = RuleSet::from_yaml_str(text, Path::new("dir/multi.yml"), &maps());
        let statuses: Vec<&RuleStatus> = reports.iter().map(|r| &r.status).collect();
        assert_eq!(
            statuses[0],
            &RuleStatus::NotApplicable(
                "logsource product=linux service=auditd has no OCSF mapping yet".into()
            )
        );
        assert!(
            matches!(statuses[1], RuleStatus::NotApplicable(r) if r.contains("`TargetFilename`"))
        );
        assert!(matches!(statuses[2], RuleStatus::Unsupported(r) if r.contains("correlation")));
        assert_eq!(statuses[3], &RuleStatus::Loaded);
        assert!(
            matches!(statuses[4], RuleStatus::Unsupported(r) if r.contains("status: unsupported"))
        );
        assert_eq!(rules[0].id, "multi#3");
        assert_eq!(
            reports[1].logsource,
            "category=process_creation product=linux"
        );
    }
}
