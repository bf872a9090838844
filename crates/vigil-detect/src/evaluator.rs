//! The whole evaluation of an event stream: every rule of a [`RuleSet`], and the correlation
//! rules over per-host state. The server's detection workers and `vigil rules eval` both run
//! it, so a replayed log raises the findings the server would have raised.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use vigil_ocsf::{DetectionFinding, Event, EventError};

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
        self.evaluate_in(host, &Whole::of(event), now_ms, enabled, out);
    }

    /// [`Evaluator::evaluate`] for an event as JSON text: the document is read for the
    /// attributes the rules need ([`RuleSet::read_event`]) and parsed whole only when a
    /// finding needs its evidence. Raises the same findings as `evaluate` on
    /// [`Event::from_json`]'s event, and refuses what it refuses.
    pub fn evaluate_json(
        &mut self,
        host: &str,
        json: &[u8],
        now_ms: i64,
        enabled: impl Fn(&str) -> bool,
        out: &mut Vec<DetectionFinding>,
    ) -> Result<(), EventError> {
        let event = self.rules.read_event(json)?;
        self.evaluate_read(host, &event, json, now_ms, enabled, out);
        Ok(())
    }

    /// [`Evaluator::evaluate_json`] for a document already read: `event` is what
    /// `self.rules().read_event(json)` answered (so a caller can look at its id first).
    pub fn evaluate_read(
        &mut self,
        host: &str,
        event: &Event,
        json: &[u8],
        now_ms: i64,
        enabled: impl Fn(&str) -> bool,
        out: &mut Vec<DetectionFinding>,
    ) {
        let whole = Whole {
            event,
            json: Some(json),
            parsed: OnceCell::new(),
        };
        self.evaluate_in(host, &whole, now_ms, enabled, out);
    }

    fn evaluate_in(
        &mut self,
        host: &str,
        whole: &Whole<'_>,
        now_ms: i64,
        enabled: impl Fn(&str) -> bool,
        out: &mut Vec<DetectionFinding>,
    ) {
        let event = whole.event;
        if let Some(cfg) = &self.baseline {
            let b = match self.baselines.get_mut(host) {
                Some(b) => b,
                None => self.baselines.entry(host.to_owned()).or_default(),
            };
            let finding = b.observe_with(event, || whole.get(), cfg, now_ms);
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
            let mut finding = finding_for(rule, whole.get(), now_ms);
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

/// The event a finding is made of: the one evaluated, or, when that was read for matching
/// only, the whole document, parsed on first need.
struct Whole<'a> {
    /// What the rules read.
    event: &'a Event,
    /// The document `event` was read from, if it was read in part.
    json: Option<&'a [u8]>,
    parsed: OnceCell<Event>,
}

impl<'a> Whole<'a> {
    fn of(event: &'a Event) -> Self {
        Self {
            event,
            json: None,
            parsed: OnceCell::new(),
        }
    }

    /// The whole event, with the id the evaluated one carries (a document without
    /// `metadata.uid` gets a fresh id at each parse).
    fn get(&self) -> &Event {
        let Some(json) = self.json else {
            return self.event;
        };
        self.parsed.get_or_init(|| match Event::from_json(json) {
            Ok(mut whole) => {
                if whole.uid != self.event.uid {
                    whole.uid.clone_from(&self.event.uid);
                    if let Some(m) = whole
                        .data
                        .get_mut("metadata")
                        .and_then(|m| m.as_object_mut())
                    {
                        m.insert("uid".into(), self.event.uid.clone().into());
                    }
                }
                whole
            }
            // Not reached: the same bytes were read once already.
            Err(_) => self.event.clone(),
        })
    }
}
