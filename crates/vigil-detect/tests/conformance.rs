//! Conformance over the corpus itself: for each SigmaHQ rule (Linux, emerging threats,
//! threat hunting) that Vigil loads, a small independent model of Sigma's semantics — written
//! here from the specification, sharing no code with the engine — builds an event that must
//! match and a near miss that must not, and the engine must agree on both.
//!
//! The model covers selections as field maps (and lists of them), the value modifiers
//! `contains`, `startswith`, `endswith`, `all`, `cased`, `exists`, `cidr` (IPv4), `lt`/`lte`/
//! `gt`/`gte`, wildcards and escapes, `null`, and conditions with `and`/`or`/`not`,
//! parentheses, `1 of`/`all of` with prefixes and `them`, keyword lists, and the field maps'
//! constants and include filters. A rule outside that (regular expressions, encodings, field
//! references) is counted and left out; the test requires most loaded rules to be covered, so
//! the share cannot quietly drop. The model itself is in `sigma_model/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use serde_yaml::Value;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::{FieldMaps, LogSource};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/sigma");

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

mod sigma_model;

use sigma_model::{KEYWORD, NEVER, Parser, Skip, eval, event_for, selection};

#[test]
fn every_rule_the_model_covers_matches_its_event_and_not_its_near_miss() {
    let maps = FieldMaps::builtin().unwrap();
    let mut files = Vec::new();
    for sub in [
        "rules/linux",
        "rules-emerging-threats",
        "rules-threat-hunting",
    ] {
        yaml_files(&Path::new(SHARED).join(sub), &mut files);
    }
    files.sort();
    let (mut loaded, mut covered, mut near_misses) = (0usize, 0usize, 0usize);
    let mut skipped: BTreeMap<Skip, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (set, report) = RuleSet::load_str(&text, file, &maps);
        let standalone = report.rules.len() == 1
            && matches!(report.rules[0].status, RuleStatus::Loaded)
            && set.correlations().is_empty();
        if !standalone {
            continue;
        }
        loaded += 1;
        let doc: Value = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(_) => continue,
        };
        let ls: LogSource = serde_yaml::from_value(doc["logsource"].clone()).unwrap_or_default();
        let Some(map) = maps.for_logsource(&LogSource {
            category: ls.category.clone(),
            product: ls.product.clone(),
            service: ls.service.clone(),
        }) else {
            continue;
        };
        // A keyword is placed in the first attribute (by name) the map names: the engine
        // searches them all.
        let keyword_path = map.fields.values().flatten().min().cloned();
        let paths = |f: &str| {
            if f == KEYWORD {
                keyword_path.clone()
            } else {
                map.paths(f).and_then(|p| p.first().cloned())
            }
        };
        let include: Vec<(String, Json)> = map
            .include
            .iter()
            .filter_map(|(path, values)| Some((path.clone(), values.first()?.clone())))
            .collect();
        let constant = |f: &str| {
            map.constant(f)
                .map(|v| v.iter().map(|c| json!(c)).collect::<Vec<_>>())
        };
        let outcome = (|| -> Result<(Json, Option<Json>), Skip> {
            let det = doc["detection"].as_mapping().ok_or("no detection")?;
            let mut sels = BTreeMap::new();
            let mut condition = None;
            for (k, v) in det {
                let k = k.as_str().ok_or("a non-string key")?;
                if k == "condition" {
                    condition = Some(v.as_str().ok_or("a condition list")?.to_owned());
                } else if k != "timeframe" {
                    sels.insert(k.to_owned(), selection(v)?);
                }
            }
            let condition = condition.ok_or("no condition")?;
            let spaced = condition.replace('(', " ( ").replace(')', " ) ");
            let names: Vec<String> = sels.keys().cloned().collect();
            let mut p = Parser {
                toks: spaced.split_whitespace().collect(),
                at: 0,
                names: &names,
            };
            let cond = p.or()?;
            if p.at != p.toks.len() {
                return Err("trailing condition tokens");
            }
            if names.len() > 12 {
                return Err("too many selections to enumerate");
            }
            // The truth assignment with the fewest true selections that satisfies the rule.
            let mut best: Option<Vec<&String>> = None;
            for bits in 0u32..(1 << names.len()) {
                let truth: BTreeMap<String, bool> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), bits & (1 << i) != 0))
                    .collect();
                if !eval(&cond, &truth) {
                    continue;
                }
                let on: Vec<&String> = names.iter().filter(|n| truth[*n]).collect();
                if event_for(
                    &sels,
                    &on,
                    (map.class_uid, map.activity_id),
                    &paths,
                    &constant,
                    &include,
                )
                .is_ok()
                    && best.as_ref().is_none_or(|b| on.len() < b.len())
                {
                    best = Some(on);
                }
            }
            let on = best.ok_or_else(|| {
                // Every assignment that satisfies the condition needs a constant the
                // logsource never has (an auditd rule about a syscall other than execve).
                let never = (0u32..(1 << names.len())).all(|bits| {
                    let truth: BTreeMap<String, bool> = names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (n.clone(), bits & (1 << i) != 0))
                        .collect();
                    let on: Vec<&String> = names.iter().filter(|n| truth[*n]).collect();
                    !eval(&cond, &truth)
                        || event_for(
                            &sels,
                            &on,
                            (map.class_uid, map.activity_id),
                            &paths,
                            &constant,
                            &include,
                        ) == Err(NEVER)
                });
                if never {
                    NEVER
                } else {
                    "no truth assignment the model can build"
                }
            })?;
            let hit = event_for(
                &sels,
                &on,
                (map.class_uid, map.activity_id),
                &paths,
                &constant,
                &include,
            )?;
            // Near miss: one true selection made false, if that makes the rule false.
            let miss = on.iter().find_map(|name| {
                let fewer: Vec<&String> = on.iter().filter(|n| *n != name).copied().collect();
                let truth: BTreeMap<String, bool> = names
                    .iter()
                    .map(|n| (n.clone(), fewer.contains(&n)))
                    .collect();
                if eval(&cond, &truth) {
                    return None;
                }
                event_for(
                    &sels,
                    &fewer,
                    (map.class_uid, map.activity_id),
                    &paths,
                    &constant,
                    &include,
                )
                .ok()
            });
            Ok((hit, miss))
        })();
        match outcome {
            Err(why) => {
                if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
                    eprintln!("left out {}: {why}", file.display());
                }
                *skipped.entry(why).or_default() += 1
            }
            Ok((hit, miss)) => {
                covered += 1;
                // Each event both as built and as a detection worker reads it from its text.
                let ev = Event::from_value(hit.clone()).unwrap();
                let read = set.read_event(hit.to_string().as_bytes()).unwrap();
                if set.matches_all(&ev).next().is_none() || set.matches_all(&read).next().is_none()
                {
                    failures.push(format!("{}: does not match {hit}", file.display()));
                }
                if let Some(miss) = miss {
                    near_misses += 1;
                    let ev = Event::from_value(miss.clone()).unwrap();
                    let read = set.read_event(miss.to_string().as_bytes()).unwrap();
                    if set.matches_all(&ev).next().is_some()
                        || set.matches_all(&read).next().is_some()
                    {
                        failures.push(format!("{}: matches the near miss {miss}", file.display()));
                    }
                }
            }
        }
    }
    eprintln!(
        "conformance: {loaded} standalone rules loaded, {covered} covered ({near_misses} with a \
         near miss); left out: {skipped:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Rules the view can never satisfy (an auditd rule about another syscall) are not the
    // model's to cover.
    let loaded = loaded - skipped.get(NEVER).copied().unwrap_or(0);
    assert!(
        covered * 100 >= loaded * 90,
        "the model covers only {covered} of {loaded} rules: {skipped:?}"
    );
}
