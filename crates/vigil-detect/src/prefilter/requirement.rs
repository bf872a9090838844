//! What literals a rule's detection needs: a conjunction of clauses, each a disjunction of
//! (OCSF path, literal) atoms, such that any event the detection matches contains, in some
//! string (or rendered number or boolean) at the atom's path, the atom's literal, ignoring
//! ASCII case, for at least one atom of every clause.
//!
//! The derivation only ever loses precision, never soundness: a node whose matches need no
//! literal (`not`, `null`, `exists`, regular expressions, numeric comparisons, networks,
//! field references) yields no requirement, an OR needs every branch to have one, and an AND
//! keeps the clauses of all its branches. A branch that can never match (a constant-false
//! selection: the auditd view's `type: SYSCALL` in a file view) is left out of an OR, makes
//! an AND unmatchable, and a detection that can never match is never evaluated.

use crate::detection::{Detection, FieldMatcher, FieldTest, KeywordMatcher, Node, ValuePattern};
use crate::lookup::FieldPath;
use crate::matcher::StrMatcher;
use crate::prefilter::regex_literals::{clause_score, required_literals};

/// Literals shorter than this do not make a clause worth scanning for.
const MIN_NEEDLE: usize = 2;

/// Clauses kept per rule: the most selective, evaluated first, plus a few more.
pub(crate) const MAX_CLAUSES: usize = 4;

/// Numbers beyond this are rendered with an exponent by some encoders; they get no literal.
const MAX_EXACT_INTEGER: u64 = 1_000_000_000_000_000;

/// One literal at one attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Atom {
    /// Dotted OCSF path.
    pub(crate) path: String,
    /// The literal, ASCII lower case.
    pub(crate) needle: String,
    /// Only strings (and strings in arrays) can hold it: a keyword search's literal.
    pub(crate) strings_only: bool,
}

/// Some atom of the clause must be present.
pub(crate) type Clause = Vec<Atom>;

/// What a detection (or a part of one) needs to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// It cannot match any event.
    Never,
    /// It may match without any literal.
    Free,
    /// One atom of each clause.
    Clauses(Vec<Clause>),
}

impl Need {
    fn from_clauses(clauses: Vec<Clause>) -> Self {
        if clauses.is_empty() {
            Self::Free
        } else {
            Self::Clauses(clauses)
        }
    }
}

/// The clauses a detection needs, most selective first (`Free` when it can match without any
/// literal, `Never` when it cannot match at all).
pub(crate) fn requirement(detection: &Detection) -> Need {
    let mut clauses = match node(detection, &detection.condition, 0) {
        Need::Clauses(clauses) => clauses,
        other => return other,
    };
    clauses.iter_mut().for_each(|c| {
        c.sort();
        c.dedup();
    });
    // A one-character literal is in nearly every event: scanning for it costs more than the
    // rule evaluations it could save. Unless the rule has nothing better: a clause of them is
    // still met less often than "always" (an absent attribute holds none), and each path has
    // its own automaton, so its matches cost only at that path.
    let (long, short): (Vec<Clause>, Vec<Clause>) = clauses
        .into_iter()
        .partition(|c| c.iter().all(|a| a.needle.len() >= MIN_NEEDLE));
    let mut clauses = long;
    if clauses.is_empty() {
        clauses.extend(short.into_iter().max_by_key(score));
    }
    clauses.sort_by_key(|c| std::cmp::Reverse(score(c)));
    clauses.dedup();
    clauses.truncate(MAX_CLAUSES);
    Need::from_clauses(clauses)
}

/// How selective a clause is: its shortest literal, then fewer atoms.
fn score(clause: &Clause) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = clause.iter().map(|a| a.needle.len()).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(clause.len()))
}

/// Deep enough for any real condition; deeper nesting gives up (soundly).
const MAX_DEPTH: usize = 64;

fn node(det: &Detection, n: &Node, depth: usize) -> Need {
    if depth > MAX_DEPTH {
        return Need::Free;
    }
    match n {
        Node::And(children) => {
            let mut all = Vec::new();
            for child in children.iter() {
                match node(det, child, depth + 1) {
                    Need::Never => return Need::Never,
                    Need::Free => {}
                    Need::Clauses(clauses) => all.extend(clauses),
                }
            }
            Need::from_clauses(all)
        }
        Node::Or(children) => {
            let mut union = Clause::new();
            let mut possible = false;
            for child in children.iter() {
                match node(det, child, depth + 1) {
                    Need::Never => {}
                    Need::Free => return Need::Free,
                    Need::Clauses(clauses) => {
                        possible = true;
                        match clauses.into_iter().max_by_key(score) {
                            Some(best) => union.extend(best),
                            None => return Need::Free,
                        }
                    }
                }
            }
            if possible {
                Need::from_clauses(vec![union])
            } else {
                // An empty OR (a constant-false selection), or only impossible branches.
                Need::Never
            }
        }
        Node::Not(_) => Need::Free,
        Node::Field(f) => field(f).map_or(Need::Free, Need::Clauses),
        Node::Keyword(k) => keyword(k).map_or(Need::Free, Need::Clauses),
        Node::Search(i) => det
            .searches
            .get(*i)
            .map_or(Need::Free, |s| node(det, s, depth + 1)),
    }
}

/// Atoms for `patterns` (any of which may match) at any of `paths`, or `None` when one
/// pattern has no literal.
fn any_pattern(
    paths: &[FieldPath],
    patterns: &[ValuePattern],
    strings_only: bool,
) -> Option<Clause> {
    let mut clause = Clause::new();
    for pattern in patterns {
        for needle in needles(pattern)? {
            clause.extend(paths.iter().map(|p| Atom {
                path: p.dotted(),
                needle: needle.clone(),
                strings_only,
            }));
        }
    }
    (!clause.is_empty()).then_some(clause)
}

fn field(f: &FieldMatcher) -> Option<Vec<Clause>> {
    match &f.test {
        FieldTest::AnyOf {
            patterns,
            or_null: false,
        } => any_pattern(&f.paths, patterns, false).map(|c| vec![c]),
        FieldTest::AllOf(groups) => {
            let clauses: Vec<Clause> = groups
                .iter()
                .filter_map(|g| any_pattern(&f.paths, g, false))
                .collect();
            (!clauses.is_empty()).then_some(clauses)
        }
        FieldTest::AnyOf { or_null: true, .. }
        | FieldTest::NoneOf(_)
        | FieldTest::Exists(_)
        | FieldTest::IsNull
        | FieldTest::SameAs { .. } => None,
    }
}

fn keyword(k: &KeywordMatcher) -> Option<Vec<Clause>> {
    if k.all {
        let clauses: Vec<Clause> = k
            .groups
            .iter()
            .filter_map(|g| any_pattern(&k.paths, g, true))
            .collect();
        return (!clauses.is_empty()).then_some(clauses);
    }
    let mut union = Clause::new();
    for group in k.groups.iter() {
        union.extend(any_pattern(&k.paths, group, true)?);
    }
    (!union.is_empty()).then(|| vec![union])
}

/// Literals one of which is contained (ignoring ASCII case) in the text of every value the
/// pattern matches.
pub(crate) fn needles(pattern: &ValuePattern) -> Option<Vec<String>> {
    let text = match pattern {
        ValuePattern::Str(StrMatcher::Folded { pat, .. } | StrMatcher::Cased { pat, .. }) => {
            pat.to_string()
        }
        ValuePattern::Str(StrMatcher::Glob(glob)) => glob.required_literal()?,
        ValuePattern::Str(StrMatcher::Regex { re, ignore_case }) => {
            let cnf = required_literals(re.as_str(), *ignore_case)?;
            return cnf.into_iter().max_by_key(|c| clause_score(c));
        }
        ValuePattern::Str(StrMatcher::Any) => return None,
        // An integer meets equal numbers (rendered `4444` or `4444.0`) and its own text.
        ValuePattern::Num { n, .. } => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if u < MAX_EXACT_INTEGER => u.to_string(),
            (None, Some(i)) if i.unsigned_abs() < MAX_EXACT_INTEGER => i.to_string(),
            _ => return None,
        },
        ValuePattern::Bool(b) => b.to_string(),
        ValuePattern::Cmp(..) | ValuePattern::Cidr(_) => return None,
    };
    // Each attribute is searched on its own, so any byte (NUL included) may be in a literal.
    (!text.is_empty()).then(|| vec![text.to_ascii_lowercase()])
}
