//! MITRE ATT&CK: tactics and techniques as data, and the mapping from Sigma `attack.*` tags.
//!
//! The tables live in `data/attack_tactics.tsv` and `data/attack_techniques.tsv` (ATT&CK
//! Enterprise, v18 names: `stealth` is TA0005, formerly Defense Evasion, whose old short name
//! still resolves; `defense-impairment` is TA0112) and are compiled into the crate.

use std::collections::HashMap;
use std::sync::OnceLock;

use vigil_ocsf::{Attack, Tactic, Technique};

const TACTICS_TSV: &str = include_str!("../data/attack_tactics.tsv");
const TECHNIQUES_TSV: &str = include_str!("../data/attack_techniques.tsv");

/// One ATT&CK tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TacticInfo {
    /// Tactic id, e.g. `TA0002`.
    pub id: &'static str,
    /// The short name Sigma tags use, e.g. `execution`.
    pub short_name: &'static str,
    /// Display name, e.g. `Execution`.
    pub name: &'static str,
}

impl TacticInfo {
    /// As an OCSF `tactic`.
    pub fn to_ocsf(self) -> Tactic {
        Tactic {
            uid: self.id.to_owned(),
            name: self.name.to_owned(),
        }
    }
}

/// One ATT&CK technique or sub-technique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechniqueInfo {
    /// Technique id, e.g. `T1059.004`.
    pub id: &'static str,
    /// Name (ATT&CK's own; a sub-technique's without its parent's), empty when unverified.
    pub name: &'static str,
    /// Short names of its tactics, in ATT&CK's order.
    pub tactics: Vec<&'static str>,
}

struct Tables {
    tactics: Vec<TacticInfo>,
    /// Short names, current and former, to an index into `tactics`.
    by_short_name: HashMap<&'static str, usize>,
    techniques: HashMap<&'static str, TechniqueInfo>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut tactics = Vec::new();
        let mut by_short_name = HashMap::new();
        for cols in rows(TACTICS_TSV) {
            let (Some(id), Some(short), Some(name)) = (cols.first(), cols.get(1), cols.get(2))
            else {
                continue;
            };
            let index = tactics.len();
            tactics.push(TacticInfo {
                id,
                short_name: short,
                name,
            });
            by_short_name.insert(*short, index);
            for alias in cols.get(3).iter().flat_map(|a| a.split(',')) {
                if !alias.is_empty() {
                    by_short_name.insert(alias, index);
                }
            }
        }
        let techniques = rows(TECHNIQUES_TSV)
            .filter_map(|cols| {
                let id = *cols.first()?;
                let info = TechniqueInfo {
                    id,
                    name: cols.get(1).copied().unwrap_or_default(),
                    tactics: cols
                        .get(2)
                        .map(|t| t.split(',').filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default(),
                };
                Some((id, info))
            })
            .collect();
        Tables {
            tactics,
            by_short_name,
            techniques,
        }
    })
}

/// Non-comment, non-empty lines split on tabs.
fn rows(tsv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').map(str::trim).collect())
}

/// Every tactic, in the order of the ATT&CK matrix.
pub fn tactics() -> &'static [TacticInfo] {
    &tables().tactics
}

/// A tactic by its Sigma short name (`execution`, `stealth`, `defense-evasion`, …); `_` and
/// `-` are interchangeable and case is ignored.
pub fn tactic(short_name: &str) -> Option<TacticInfo> {
    let key = short_name.to_ascii_lowercase().replace('_', "-");
    let t = tables();
    t.by_short_name.get(key.as_str()).map(|&i| t.tactics[i])
}

/// A technique by id (`T1059.004`, any case).
pub fn technique(id: &str) -> Option<&'static TechniqueInfo> {
    tables().techniques.get(id.to_ascii_uppercase().as_str())
}

/// The technique id a tag names (`attack.t1059.004` → `T1059.004`).
fn technique_id(tag: &str) -> Option<String> {
    let rest = tag
        .strip_prefix("attack.")
        .or_else(|| tag.strip_prefix("ATTACK."))?;
    let digits = rest.strip_prefix(['t', 'T'])?;
    let (main, sub) = match digits.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (digits, None),
    };
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(main, 4) || sub.is_some_and(|s| !all_digits(s, 3)) {
        return None;
    }
    Some(rest.to_ascii_uppercase())
}

/// The OCSF ATT&CK mappings for a rule's tags: one per technique (in tag order, without
/// duplicates), each with the rule's first tactic tag as `tactic` and all its tactic tags as
/// `tactics`. A technique of a rule with no tactic tag takes its tactics from the data. A rule
/// with tactic tags but no technique gets one mapping without a technique.
pub fn attacks_from_tags(tags: &[String]) -> Vec<Attack> {
    let mut rule_tactics: Vec<Tactic> = Vec::new();
    let mut techniques: Vec<String> = Vec::new();
    for tag in tags {
        if let Some(id) = technique_id(tag) {
            if !techniques.contains(&id) {
                techniques.push(id);
            }
        } else if let Some(t) = tag.strip_prefix("attack.").and_then(tactic) {
            let t = t.to_ocsf();
            if !rule_tactics.contains(&t) {
                rule_tactics.push(t);
            }
        }
    }
    if techniques.is_empty() {
        return match rule_tactics.first() {
            Some(first) => vec![Attack {
                technique: None,
                tactic: Some(first.clone()),
                tactics: rule_tactics,
            }],
            None => Vec::new(),
        };
    }
    techniques
        .into_iter()
        .map(|id| {
            let info = technique(&id);
            let tactics = if rule_tactics.is_empty() {
                info.map(|i| {
                    i.tactics
                        .iter()
                        .filter_map(|s| tactic(s).map(TacticInfo::to_ocsf))
                        .collect()
                })
                .unwrap_or_default()
            } else {
                rule_tactics.clone()
            };
            Attack {
                technique: Some(Technique {
                    name: info
                        .map(|i| i.name)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                    uid: id,
                }),
                tactic: tactics.first().cloned(),
                tactics,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tables_parse_and_cover_v18_tactics() {
        assert_eq!(tactics().len(), 15);
        assert_eq!(tactic("stealth").map(|t| t.id), Some("TA0005"));
        assert_eq!(tactic("defense-evasion").map(|t| t.name), Some("Stealth"));
        assert_eq!(tactic("defense_evasion").map(|t| t.id), Some("TA0005"));
        assert_eq!(tactic("defense-impairment").map(|t| t.id), Some("TA0112"));
        assert_eq!(tactic("reconnaissance").map(|t| t.id), Some("TA0043"));
        assert_eq!(tactic("resource-development").map(|t| t.id), Some("TA0042"));
        assert_eq!(tactic("Command-And-Control").map(|t| t.id), Some("TA0011"));
        assert!(tactic("t1059").is_none());
        for t in tables().techniques.values() {
            assert!(!t.tactics.is_empty(), "{} has no tactic", t.id);
            for s in &t.tactics {
                assert!(tactic(s).is_some(), "{}: unknown tactic {s}", t.id);
            }
            if let Some((parent, _)) = t.id.split_once('.') {
                assert!(technique(parent).is_some(), "{} lacks its parent", t.id);
            }
        }
    }

    #[test]
    fn technique_tags_are_recognised() {
        assert_eq!(
            technique_id("attack.t1059.004").as_deref(),
            Some("T1059.004")
        );
        assert_eq!(technique_id("attack.t1027").as_deref(), Some("T1027"));
        for not in [
            "attack.execution",
            "attack.g0020",
            "attack.t105",
            "attack.t1059.4",
            "cve.t1059",
        ] {
            assert_eq!(technique_id(not), None, "{not}");
        }
        assert_eq!(
            technique("t1027").map(|t| t.name),
            Some("Obfuscated Files or Information")
        );
    }

    #[test]
    fn attacks_carry_rule_tactics() {
        let a = attacks_from_tags(&tags(&[
            "attack.stealth",
            "attack.t1027",
            "attack.execution",
            "attack.t1059.004",
            "attack.t1027",
            "detection.threat-hunting",
        ]));
        assert_eq!(a.len(), 2);
        let t = a[0].technique.as_ref().unwrap();
        assert_eq!(t.uid, "T1027");
        assert_eq!(t.name.as_deref(), Some("Obfuscated Files or Information"));
        assert_eq!(a[0].tactic.as_ref().unwrap().uid, "TA0005");
        assert_eq!(a[0].tactic.as_ref().unwrap().name, "Stealth");
        assert_eq!(a[1].tactics.len(), 2);
        assert_eq!(a[1].tactic, a[0].tactic);
    }

    #[test]
    fn techniques_without_tactic_tags_use_the_data() {
        let a = attacks_from_tags(&tags(&["attack.t1053.003"]));
        assert_eq!(a[0].tactic.as_ref().unwrap().uid, "TA0002");
        assert_eq!(a[0].tactics.len(), 3);
        let unknown = attacks_from_tags(&tags(&["attack.t9999"]));
        assert_eq!(unknown[0].technique.as_ref().unwrap().name, None);
        assert!(unknown[0].tactic.is_none());
    }

    #[test]
    fn tactic_only_rules_get_one_mapping() {
        let a = attacks_from_tags(&tags(&["attack.discovery"]));
        assert_eq!(a.len(), 1);
        assert!(a[0].technique.is_none());
        assert_eq!(a[0].tactic.as_ref().unwrap().uid, "TA0007");
        assert!(attacks_from_tags(&tags(&["cve.2021-4034"])).is_empty());
    }
}
