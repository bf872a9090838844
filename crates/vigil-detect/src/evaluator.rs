//! The whole evaluation of an event stream: every rule of a [`RuleSet`], and the correlation
//! rules over per-host state. The server's detection workers and `vigil rules eval` both run
//! it, so a replayed log raises the findings the server would have raised.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use vigil_ocsf::{DetectionFinding, Event};

use crate::baseline::{BaselineConfig, HostBaseline};
use crate::{CorrelationLimits, Correlator, Rule, RuleSet, correlation_finding, finding_for};

/// Rules and their correlation state, one partition per host, and optionally each host's
/// behaviour baseline.
#[derive(Debug)]
pub struct Evaluator {
    rules: Arc<RuleSet>,
    limits: CorrelationLimits,
    /// Correlation state per host: a host's events correlate only with its own.
    correlators: HashMap<String, Correlator>,
    baseline: Option<BaselineConfig>,
    baselines: HashMap<String, HostBaseline>,
    /// Hosts whose baseline changed since [`Evaluator::take_changed_baselines`].
    changed: BTreeSet<String>,
}

impl Evaluator {
    /// An evaluator of `rules` with empty correlation state.
    pub fn new(rules: Arc<RuleSet>, limits: CorrelationLimits) -> Self {
        Self {
            rules,
            limits,
            correlators: HashMap::new(),
            baseline: None,
            baselines: HashMap::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Also keeps a behaviour baseline per host ([`crate::baseline`]); its findings pass
    /// `enabled` under their analytic ids ([`crate::baseline::LINEAGE_ANALYTIC`], …).
    #[must_use]
    pub fn with_baseline(mut self, cfg: BaselineConfig) -> Self {
        self.baseline = Some(cfg);
        self
    }

    /// Replaces every host's baseline with saved ones (`(host, JSON)` as
    /// [`Evaluator::take_changed_baselines`] gave them); a state that does not parse is
    /// dropped (that host learns again), and named in the answer.
    pub fn restore_baselines(&mut self, saved: &[(String, Vec<u8>)]) -> Vec<String> {
        self.baselines.clear();
        self.changed.clear();
        let mut bad = Vec::new();
        for (host, json) in saved {
            match serde_json::from_slice::<HostBaseline>(json) {
                Ok(b) => {
                    self.baselines.insert(host.clone(), b);
                }
                Err(_) => bad.push(host.clone()),
            }
        }
        bad
    }

    /// The baselines that changed since the last call, as `(host, JSON)`.
    pub fn take_changed_baselines(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|host| {
                let json = serde_json::to_vec(self.baselines.get(&host)?).ok()?;
                Some((host, json))
            })
            .collect()
    }

    /// The rules it evaluates.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Appends to `out` the findings `event` from `host` raises: one per matching rule that
    /// `enabled` allows, with the id [`crate::finding_uid`] gives (the same wherever and
    /// however often the event is evaluated), then those of correlation rules it completes.
    pub fn evaluate(
        &mut self,
        host: &str,
        event: &Event,
        now_ms: i64,
        enabled: impl Fn(&str) -> bool,
        out: &mut Vec<DetectionFinding>,
    ) {
        if let Some(cfg) = &self.baseline {
            let b = match self.baselines.get_mut(host) {
                Some(b) => b,
                None => self.baselines.entry(host.to_owned()).or_default(),
            };
            let finding = b.observe(event, cfg, now_ms);
            if b.take_changed() && !self.changed.contains(host) {
                self.changed.insert(host.to_owned());
            }
            if let Some(f) = finding.filter(|f| enabled(&f.finding_info.analytic.uid)) {
                out.push(f);
            }
        }
        let matched: Vec<&Rule> = self.rules.matches_all(event).collect();
        if matched.is_empty() {
            return;
        }
        for rule in matched.iter().filter(|r| r.standalone && enabled(&r.id)) {
            let mut finding = finding_for(rule, event, now_ms);
            finding.finding_info.uid = crate::finding_uid(&rule.id, &event.uid);
            out.push(finding);
        }
        if self.rules.correlations().is_empty() {
            return;
        }
        let correlator = match self.correlators.get_mut(host) {
            Some(c) => c,
            None => self
                .correlators
                .entry(host.to_owned())
                .or_insert_with(|| Correlator::new(&self.rules, self.limits)),
        };
        for hit in correlator.observe(event, &matched) {
            if enabled(&hit.rule.id) {
                out.push(correlation_finding(&hit, now_ms));
            }
        }
    }

    /// Ends the correlation windows that closed before `newest_ms`, the newest event time seen.
    pub fn expire(&mut self, newest_ms: i64) {
        self.correlators
            .values_mut()
            .for_each(|c| c.expire(newest_ms));
    }

    /// Hosts with correlation state.
    pub fn hosts(&self) -> usize {
        self.correlators.len()
    }
}
