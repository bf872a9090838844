//! Resolves correlation rules once every file is read: their references (by id, then by
//! `name`; the first rule loaded wins a name two rules share), the chains they form, their
//! `group-by` and `field` names through each referenced rule's field map (and `aliases`), and
//! which rules stop raising findings of their own (`generate`).

use std::collections::HashMap;

use vigil_ocsf::Severity;
use vigil_ocsf::fieldmap::FieldMaps;

use crate::attack::attacks_from_tags;
use crate::correlation::rule::{Getter, Input, Source};
use crate::correlation::{CorrelationRule, CorrelationType, CountCondition};
use crate::lookup::FieldPath;
use crate::rule::{Rule, RuleReport, RuleStatus};
use crate::sigma::PendingCorrelation;
use crate::sigma::correlation::RawCorrelation;
use crate::sigma::parse::format_logsource;

/// Every document read, to explain references to rules that did not load.
pub(crate) struct Known<'a> {
    pub(crate) reports: &'a [RuleReport],
    /// The `name` of each document, beside `reports`.
    pub(crate) names: &'a [Option<String>],
}

/// What a reference names.
#[derive(Debug, Clone)]
enum Target {
    /// A loaded detection rule (index into the rules).
    Rule(usize),
    /// A correlation rule (index into the pending correlations).
    Correlation(usize),
    /// Nothing usable: the status the referring correlation gets.
    Missing(RuleStatus),
}

/// Progress of resolving one correlation (depth-first, to find chains and cycles).
#[derive(Debug, Clone)]
enum State {
    Todo,
    InProgress,
    /// Loaded, at this index of the output.
    Done(usize),
    Failed(RuleStatus),
}

struct Resolver<'a> {
    pending: &'a [PendingCorrelation],
    rules: &'a [Rule],
    maps: &'a FieldMaps,
    targets: Vec<Vec<Target>>,
    states: Vec<State>,
    out: Vec<CorrelationRule>,
}

/// Resolves the pending correlations: the loaded ones (referenced correlations before those
/// that refer to them), and the status of every pending one by its report index. Clears
/// [`Rule::standalone`] on rules referred to without `generate: true`.
pub(crate) fn resolve(
    pending: &[PendingCorrelation],
    rules: &mut [Rule],
    known: &Known<'_>,
    maps: &FieldMaps,
) -> (Vec<CorrelationRule>, Vec<(usize, RuleStatus)>) {
    let targets: Vec<Vec<Target>> = pending
        .iter()
        .map(|p| {
            p.raw
                .rules
                .iter()
                .map(|r| find(r, pending, rules, known))
                .collect()
        })
        .collect();
    // Referenced rules raise no findings of their own unless the correlation says `generate`,
    // whether or not the correlation itself can be used (pySigma does the same): they were
    // written as building blocks.
    let mut correlation_standalone = vec![true; pending.len()];
    for (p, ts) in pending.iter().zip(&targets) {
        if p.raw.generate {
            continue;
        }
        for t in ts {
            match t {
                Target::Rule(i) => {
                    // Every variant (view) of the rule.
                    if let Some(id) = rules.get(*i).map(|r| r.id.clone()) {
                        rules
                            .iter_mut()
                            .filter(|r| r.id == id)
                            .for_each(|r| r.standalone = false);
                    }
                }
                Target::Correlation(j) => correlation_standalone[*j] = false,
                Target::Missing(_) => {}
            }
        }
    }
    let mut resolver = Resolver {
        pending,
        rules,
        maps,
        targets,
        states: vec![State::Todo; pending.len()],
        out: Vec::new(),
    };
    for i in 0..pending.len() {
        resolver.visit(i, &mut Vec::new());
    }
    let statuses = pending
        .iter()
        .zip(&resolver.states)
        .map(|(p, state)| {
            let status = match state {
                State::Failed(s) => s.clone(),
                _ => RuleStatus::Loaded,
            };
            (p.report, status)
        })
        .collect();
    let mut out = resolver.out;
    for (i, state) in resolver.states.iter().enumerate() {
        if let (State::Done(at), Some(false)) = (state, correlation_standalone.get(i).copied())
            && let Some(c) = out.get_mut(*at)
        {
            c.standalone = false;
        }
    }
    (out, statuses)
}

/// Finds what a reference names: a loaded rule or a correlation by id, then by name; or why
/// there is none.
fn find(
    reference: &str,
    pending: &[PendingCorrelation],
    rules: &[Rule],
    known: &Known<'_>,
) -> Target {
    if let Some(i) = rules.iter().position(|r| r.id == reference) {
        return Target::Rule(i);
    }
    if let Some(j) = pending.iter().position(|p| p.id == reference) {
        return Target::Correlation(j);
    }
    if let Some(i) = rules
        .iter()
        .position(|r| r.name.as_deref() == Some(reference))
    {
        return Target::Rule(i);
    }
    if let Some(j) = pending
        .iter()
        .position(|p| p.raw.meta.name.as_deref() == Some(reference))
    {
        return Target::Correlation(j);
    }
    let unloaded = known.reports.iter().zip(known.names).find(|(r, name)| {
        r.status != RuleStatus::Loaded
            && (r.id.as_deref() == Some(reference) || name.as_deref() == Some(reference))
    });
    Target::Missing(match unloaded {
        Some((report, _)) => {
            let why = report.status.reason().unwrap_or("not loaded");
            let reason = format!(
                "refers to rule `{reference}` ({}), which is not loaded: {why}",
                report.path.display()
            );
            match &report.status {
                RuleStatus::Unsupported(_) => RuleStatus::Unsupported(reason),
                _ => RuleStatus::NotApplicable(reason),
            }
        }
        None => RuleStatus::NotApplicable(format!(
            "refers to rule `{reference}`, which is not among the rules loaded"
        )),
    })
}

impl Resolver<'_> {
    /// Resolves correlation `i` after those it refers to.
    fn visit(&mut self, i: usize, stack: &mut Vec<usize>) -> State {
        match &self.states[i] {
            State::Todo => {}
            State::InProgress => {
                let mut names: Vec<&str> = stack
                    .iter()
                    .skip_while(|&&s| s != i)
                    .map(|&s| self.pending[s].id.as_str())
                    .collect();
                names.push(&self.pending[i].id);
                return State::Failed(RuleStatus::Malformed(format!(
                    "correlation rules refer to each other in a cycle: {}",
                    names.join(" → ")
                )));
            }
            done => return done.clone(),
        }
        self.states[i] = State::InProgress;
        stack.push(i);
        let state = match self.build(i, stack) {
            Ok(rule) => {
                self.out.push(rule);
                State::Done(self.out.len() - 1)
            }
            Err(status) => State::Failed(status),
        };
        stack.pop();
        self.states[i] = state.clone();
        state
    }

    fn build(&mut self, i: usize, stack: &mut Vec<usize>) -> Result<CorrelationRule, RuleStatus> {
        let p = &self.pending[i];
        let raw = &p.raw;
        if raw.meta.declared_unsupported() {
            return Err(RuleStatus::Unsupported(
                "the rule declares `status: unsupported`".into(),
            ));
        }
        let kind = raw.kind.clone().map_err(|t| {
            RuleStatus::Unsupported(format!("correlation type `{t}` is not supported"))
        })?;
        if let Some(expr) = &raw.extended_condition {
            return Err(RuleStatus::Unsupported(format!(
                "a condition written as an expression (`{expr}`) is not supported; \
                 list the rules under `rules` instead"
            )));
        }
        let mut inputs = Vec::with_capacity(raw.rules.len());
        let mut ids = Vec::with_capacity(raw.rules.len());
        for (reference, target) in raw.rules.iter().zip(self.targets[i].clone()) {
            let (source, group, value, id) = match target {
                Target::Missing(status) => return Err(status),
                Target::Rule(r) => {
                    let rule = &self.rules[r];
                    let (group, value) = rule_getters(raw, rule, self.maps)?;
                    (Source::Rule(rule.id.clone()), group, value, rule.id.clone())
                }
                Target::Correlation(j) => {
                    let at = match self.visit(j, stack) {
                        State::Done(at) => at,
                        State::Failed(RuleStatus::Malformed(why)) if why.contains("cycle") => {
                            return Err(RuleStatus::Malformed(why));
                        }
                        State::Failed(status) => {
                            let why = status.reason().unwrap_or("not loaded").to_owned();
                            let reason = format!(
                                "refers to correlation `{reference}`, which is not loaded: {why}"
                            );
                            return Err(match status {
                                RuleStatus::Unsupported(_) => RuleStatus::Unsupported(reason),
                                _ => RuleStatus::NotApplicable(reason),
                            });
                        }
                        State::Todo | State::InProgress => {
                            return Err(RuleStatus::Malformed(format!(
                                "correlation `{reference}` could not be resolved"
                            )));
                        }
                    };
                    let inner = &self.out[at];
                    let (group, value) = chain_getters(raw, inner)?;
                    (Source::Correlation(at), group, value, inner.id.clone())
                }
            };
            ids.push(id);
            inputs.push(Input {
                source,
                group,
                value,
            });
        }
        let condition = match (&raw.condition, kind) {
            (Some(c), _) => c.clone(),
            (None, CorrelationType::Temporal | CorrelationType::TemporalOrdered) => {
                CountCondition::at_least(i64::try_from(raw.rules.len()).unwrap_or(i64::MAX))
            }
            (None, _) => {
                return Err(RuleStatus::Malformed(
                    "missing mandatory `condition`".into(),
                ));
            }
        };
        let meta = &raw.meta;
        Ok(CorrelationRule {
            id: p.id.clone(),
            name: meta.name.clone(),
            title: meta.title.clone(),
            description: meta.description.clone(),
            level: meta.level.unwrap_or(Severity::Medium),
            attacks: attacks_from_tags(&meta.tags),
            tags: meta.tags.clone(),
            path: p.path.clone(),
            author: meta.author.clone(),
            sigma_status: meta.status.clone(),
            references: meta.references.clone(),
            falsepositives: meta.falsepositives.clone(),
            kind,
            rules: ids,
            group_by: raw.group_by.clone(),
            timespan_ms: raw.timespan_ms,
            condition,
            field: raw.field.clone(),
            generate: raw.generate,
            standalone: true,
            inputs,
        })
    }
}

/// The field a `group-by` or `field` name stands for in the events of the rule known by
/// `refs` (an alias, or the name itself), and whether it came from an alias.
fn field_name<'a>(raw: &'a RawCorrelation, name: &'a str, refs: &[&str]) -> (&'a str, bool) {
    match raw.aliases.iter().find(|a| a.name == name) {
        Some(alias) => match alias.field_for(refs) {
            Some(field) => (field, true),
            None => (name, true),
        },
        None => (name, false),
    }
}

/// Getters reading a detection rule's events through its logsource's field map.
fn rule_getters(
    raw: &RawCorrelation,
    rule: &Rule,
    maps: &FieldMaps,
) -> Result<(Vec<Getter>, Vec<Getter>), RuleStatus> {
    let refs: Vec<&str> = std::iter::once(rule.id.as_str())
        .chain(rule.name.as_deref())
        .collect();
    // The rule's first view: a correlation over a rule with several views groups its events
    // through the primary view's fields.
    let map = maps.view(&rule.logsource, rule.view.as_deref());
    let getter = |what: &str, name: &str| {
        let (field, aliased) = field_name(raw, name, &refs);
        match map.and_then(|m| m.paths(field)) {
            Some(paths) => Ok(Getter::Paths(
                paths.iter().map(|p| FieldPath::new(p)).collect(),
            )),
            None => {
                let via = if aliased && field == name {
                    format!("alias `{name}` names no field for rule `{}`, and ", rule.id)
                } else if aliased {
                    format!(
                        "alias `{name}` stands for `{field}` in rule `{}`, but ",
                        rule.id
                    )
                } else {
                    String::new()
                };
                Err(RuleStatus::NotApplicable(format!(
                    "{what} `{name}`: {via}field `{field}` has no OCSF mapping for logsource {} \
                     (rule `{}`)",
                    format_logsource(&rule.logsource),
                    rule.id
                )))
            }
        }
    };
    let group = raw
        .group_by
        .iter()
        .map(|g| getter("group-by field", g))
        .collect::<Result<_, _>>()?;
    let value = raw
        .field
        .iter()
        .map(|f| getter("counted field", f))
        .collect::<Result<_, _>>()?;
    Ok((group, value))
}

/// Getters reading the hits of a referenced correlation: only its group-by values travel
/// along a chain.
fn chain_getters(
    raw: &RawCorrelation,
    inner: &CorrelationRule,
) -> Result<(Vec<Getter>, Vec<Getter>), RuleStatus> {
    let refs: Vec<&str> = std::iter::once(inner.id.as_str())
        .chain(inner.name.as_deref())
        .collect();
    let positions: HashMap<String, usize> = inner
        .group_by
        .iter()
        .enumerate()
        .map(|(i, g)| (g.to_ascii_lowercase(), i))
        .collect();
    let getter = |what: &str, name: &str| {
        let (field, _) = field_name(raw, name, &refs);
        positions
            .get(&field.to_ascii_lowercase())
            .map(|&i| Getter::Group(i))
            .ok_or_else(|| {
                RuleStatus::Unsupported(format!(
                    "{what} `{name}` is not among the group-by fields of the correlation `{}` \
                     it refers to; only those travel along a chain of correlations",
                    inner.id
                ))
            })
    };
    let group = raw
        .group_by
        .iter()
        .map(|g| getter("group-by field", g))
        .collect::<Result<_, _>>()?;
    let value = raw
        .field
        .iter()
        .map(|f| getter("counted field", f))
        .collect::<Result<_, _>>()?;
    Ok((group, value))
}
