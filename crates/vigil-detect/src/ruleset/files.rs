//! Finding rule files under directories.

use std::fs;
use std::path::{Path, PathBuf};

use crate::rule::{RuleReport, RuleStatus};
use crate::ruleset::LoadError;

/// The report for a file that could not be read at all.
pub(super) fn file_problem(path: &Path, reason: &str) -> RuleReport {
    RuleReport {
        path: path.to_owned(),
        id: None,
        title: None,
        logsource: String::new(),
        status: RuleStatus::Malformed(reason.to_owned()),
    }
}

/// Appends the rule files under `dir`, sorted by path at each level.
pub(super) fn collect_rule_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
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
