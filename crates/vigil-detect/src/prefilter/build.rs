//! Building a class's prefilter: literals numbered and put into one automaton per distinct set
//! of an attribute's literals, and each rule's clauses ordered so the first is the least likely
//! to be met.

use std::collections::HashMap;

use crate::lookup::FieldPath;
use crate::prefilter::requirement::{Need, requirement};
use crate::prefilter::{Automaton, Prefilter, Scanned};
use crate::rule::Rule;

/// A clause as (path, literal) index pairs, before literals get their global ids.
type LocalClause = Vec<(usize, usize)>;

/// The literals of one path.
#[derive(Debug, Default)]
struct PathLiterals {
    path: String,
    needles: Vec<String>,
    index: HashMap<String, usize>,
    /// Some literal here can be met by a number or boolean (not only by strings).
    scalars: bool,
}

/// Literals by path; a literal is known by (path index, literal index) until the paths are
/// numbered one after the other and each gets its global id.
#[derive(Debug, Default)]
struct Literals {
    paths: Vec<PathLiterals>,
    by_path: HashMap<String, usize>,
}

impl Literals {
    fn id(&mut self, path: &str, needle: &str, strings_only: bool) -> (usize, usize) {
        let at = match self.by_path.get(path) {
            Some(&at) => at,
            None => {
                self.paths.push(PathLiterals {
                    path: path.to_owned(),
                    ..PathLiterals::default()
                });
                self.by_path.insert(path.to_owned(), self.paths.len() - 1);
                self.paths.len() - 1
            }
        };
        let lits = &mut self.paths[at];
        lits.scalars |= !strings_only;
        let n = match lits.index.get(needle) {
            Some(&n) => n,
            None => {
                lits.needles.push(needle.to_owned());
                lits.index.insert(needle.to_owned(), lits.needles.len() - 1);
                lits.needles.len() - 1
            }
        };
        (at, n)
    }

    /// The global id of each path's first literal.
    fn bases(&self) -> Vec<u32> {
        let mut next = 0u32;
        self.paths
            .iter()
            .map(|p| {
                let base = next;
                next = next.saturating_add(u32::try_from(p.needles.len()).unwrap_or(u32::MAX));
                base
            })
            .collect()
    }
}

/// A prior on how common a literal is in events, by its length: short ones are.
fn prior(len: usize) -> u64 {
    match len {
        0..=1 => 64,
        2 => 16,
        3 => 4,
        4 => 2,
        _ => 1,
    }
}

impl Prefilter {
    /// Builds the prefilter of `rules` (one class, in load order).
    pub(crate) fn build(rules: &[&Rule]) -> Self {
        let mut literals = Literals::default();
        // Per rule: its clauses as (path, literal) pairs; empty: always evaluated; `None`: it
        // cannot match, so it is never evaluated.
        let mut clauses: Vec<Option<Vec<LocalClause>>> = Vec::with_capacity(rules.len());
        for rule in rules {
            let need = match requirement(&rule.detection) {
                Need::Never => {
                    clauses.push(None);
                    continue;
                }
                Need::Free => Vec::new(),
                Need::Clauses(c) => c,
            };
            let mine = need
                .iter()
                .map(|clause| {
                    let mut ids: Vec<(usize, usize)> = clause
                        .iter()
                        .map(|a| literals.id(&a.path, &a.needle, a.strings_only))
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids
                })
                .collect();
            clauses.push(Some(mine));
        }
        let bases = literals.bases();
        let total: usize = literals.paths.iter().map(|p| p.needles.len()).sum();
        let global = |(p, n): (usize, usize)| bases[p] + u32::try_from(n).unwrap_or(u32::MAX);
        let mut uses = vec![0u64; total];
        let mut lengths = vec![0usize; total];
        for (p, lits) in literals.paths.iter().enumerate() {
            for (n, needle) in lits.needles.iter().enumerate() {
                lengths[global((p, n)) as usize] = needle.len();
            }
        }
        for id in clauses.iter().flatten().flatten().flatten() {
            uses[global(*id) as usize] += 1;
        }
        let mut primary: Vec<Vec<u32>> = vec![Vec::new(); total];
        let mut secondary = Vec::with_capacity(rules.len());
        let mut always = Vec::new();
        for (local, mine) in clauses.into_iter().enumerate() {
            let local = u32::try_from(local).unwrap_or(u32::MAX);
            let Some(mine) = mine else {
                secondary.push(Box::default());
                continue;
            };
            let mut mine: Vec<Vec<u32>> = mine
                .into_iter()
                .map(|c| c.into_iter().map(global).collect())
                .collect();
            if mine.is_empty() {
                always.push(local);
                secondary.push(Box::default());
                continue;
            }
            // The first clause: the literals used by the fewest clauses (common tokens are
            // in many rules) and least short, then the longest shortest literal.
            let cost = |clause: &Vec<u32>| {
                let expected: u64 = clause
                    .iter()
                    .map(|&g| uses[g as usize] + prior(lengths[g as usize]))
                    .sum();
                let shortest = clause.iter().map(|&g| lengths[g as usize]).min();
                (expected, std::cmp::Reverse(shortest.unwrap_or(0)))
            };
            let first = (0..mine.len()).min_by_key(|&i| cost(&mine[i])).unwrap_or(0);
            for g in mine.swap_remove(first) {
                primary[g as usize].push(local);
            }
            secondary.push(mine.into_iter().map(Vec::into_boxed_slice).collect());
        }
        // One automaton per distinct set of literals (attributes that share theirs, such as
        // the attributes a keyword search reads, share one); each scanned attribute maps the
        // automaton's patterns to its literals' ids.
        let mut automata: Vec<Automaton> = Vec::new();
        let mut by_set: HashMap<Vec<&str>, usize> = HashMap::new();
        let mut paths = Vec::with_capacity(literals.paths.len());
        for (p, lits) in literals.paths.iter().enumerate() {
            let mut set: Vec<&str> = lits.needles.iter().map(String::as_str).collect();
            set.sort_unstable();
            let at = match by_set.get(&set) {
                Some(&at) => at,
                None => {
                    let bytes: Vec<&[u8]> = set.iter().map(|t| t.as_bytes()).collect();
                    let Some(automaton) = Automaton::new(&bytes) else {
                        return Self::evaluate_all(rules.len());
                    };
                    automata.push(automaton);
                    by_set.insert(set.clone(), automata.len() - 1);
                    automata.len() - 1
                }
            };
            let literal_of: HashMap<&str, u32> = lits
                .needles
                .iter()
                .enumerate()
                .map(|(n, needle)| (needle.as_str(), global((p, n))))
                .collect();
            paths.push(Scanned {
                path: FieldPath::new(&lits.path),
                scalars: lits.scalars,
                automaton: u32::try_from(at).unwrap_or(u32::MAX),
                literals: set.iter().map(|t| literal_of[t]).collect(),
            });
        }
        if automata.is_empty() {
            return Self::evaluate_all(rules.len());
        }
        Self {
            automata: automata.into(),
            paths: paths.into(),
            primary: primary.into_iter().map(Vec::into_boxed_slice).collect(),
            secondary: secondary.into(),
            always: always.into(),
            slot_mask: None,
        }
    }

    /// A prefilter that makes every rule a candidate: nothing to scan, or an automaton that
    /// could not be built.
    fn evaluate_all(rules: usize) -> Self {
        Self {
            automata: Box::new([]),
            paths: Box::new([]),
            primary: Box::new([]),
            secondary: vec![Box::default(); rules].into(),
            always: (0..u32::try_from(rules).unwrap_or(u32::MAX)).collect(),
            slot_mask: None,
        }
    }
}
