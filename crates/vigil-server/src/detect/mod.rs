//! The detection worker: reads the durable event log from its cursor, evaluates the rule set,
//! and commits findings together with the new cursor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use vigil_detect::{BaselineConfig, CorrelationLimits, Evaluator, RuleSet};
use vigil_ocsf::DetectionFinding;

use crate::background::Lane;
use crate::bus::Bus;
use crate::store::{Store, StoreError, StoredBody};
use crate::switches::RuleSwitches;

pub mod stream;

/// Name of the embedded detection consumer's cursor.
pub const CONSUMER: &str = "detect";
/// Events evaluated per store round trip (and per cursor commit, one fsync each): large enough
/// that a busy fleet costs the write lock a few commits a second, not hundreds.
const PAGE: u32 = 4096;
/// Most log positions evaluated between two commits of the cursor.
const COMMIT_EVENTS: i64 = 32_768;
/// Longest time between two commits while the worker is behind.
const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// How long to wait before retrying after a store error.
const RETRY: Duration = Duration::from_secs(1);

/// Evaluates every stored event against the rule set, exactly once per consumer.
pub struct DetectWorker {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    switches: RuleSwitches,
    /// The rules, with correlation state per endpoint (its events stay on this worker). Pages
    /// are evaluated on the worker's analysis thread ([`crate::background`]).
    evaluator: Arc<Mutex<Evaluator>>,
    /// Whether the evaluator keeps baselines (restored from the store).
    baseline: bool,
    /// The analysis thread pages are evaluated on.
    lane: Lane,
}

impl DetectWorker {
    /// A worker over the given store, bus and rules.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, rules: Arc<RuleSet>) -> Self {
        Self::with_switches(store, bus, rules, RuleSwitches::default())
    }

    /// A worker that raises no finding for the rules an operator switched off.
    pub fn with_switches(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        rules: Arc<RuleSet>,
        switches: RuleSwitches,
    ) -> Self {
        Self {
            store,
            bus,
            switches,
            evaluator: Arc::new(Mutex::new(Evaluator::new(
                rules,
                CorrelationLimits::default(),
            ))),
            baseline: false,
            lane: Lane::new("vigil-detect"),
        }
    }

    /// Also keeps a behaviour baseline per endpoint, saved with the cursor.
    #[must_use]
    pub fn with_baseline(mut self, cfg: BaselineConfig) -> Self {
        let evaluator = Arc::try_unwrap(self.evaluator)
            .ok()
            .and_then(|m| m.into_inner().ok())
            .expect("a worker being built is not shared yet");
        self.evaluator = Arc::new(Mutex::new(evaluator.with_baseline(cfg)));
        self.baseline = true;
        self
    }

    /// Takes the baselines as last committed (at start, and after a failed drain whose
    /// uncommitted observations would otherwise count twice).
    async fn restore_baselines(&mut self) -> Result<(), StoreError> {
        if self.baseline {
            let saved = self.store.detector_states(CONSUMER).await?;
            let unreadable = self.evaluator().restore_baselines(&saved);
            for host in unreadable {
                tracing::warn!(sensor_id = %host, "Unreadable behaviour baseline; the endpoint learns again");
            }
        }
        Ok(())
    }

    /// Runs until `shutdown` is cancelled; finishes the page in hand first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut wake = self.bus.subscribe_events();
        let mut restore = true;
        loop {
            let drained = if restore {
                match self.restore_baselines().await {
                    Ok(()) => self.drain().await,
                    Err(e) => Err(e),
                }
            } else {
                self.drain().await
            };
            restore = drained.is_err();
            match drained {
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(%error, "Detection worker failed to read or commit; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => continue,
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                alive = wake.next() => if !alive { return },
            }
        }
    }

    /// Evaluates everything after the cursor.
    ///
    /// Findings and the cursor are committed together (one write transaction, one fsync)
    /// when the worker has caught up, or every [`COMMIT_EVENTS`] events or [`COMMIT_EVERY`]
    /// while it is behind: under a busy fleet every commit waits for the event writer's lock,
    /// so committing per page would leave the worker waiting instead of evaluating. A crash
    /// re-evaluates at most that much, and finding ids are deterministic, so nothing is
    /// duplicated.
    async fn drain(&mut self) -> Result<(), StoreError> {
        let mut cursor = self.store.cursor(CONSUMER).await?;
        let mut committed = cursor;
        let mut findings = Vec::new();
        let mut since = Instant::now();
        loop {
            let page = self.store.event_bodies_after(cursor, PAGE).await?;
            if let Some(last) = page.last_seq {
                let evaluator = Arc::clone(&self.evaluator);
                let switches = self.switches.clone();
                let raised = self
                    .lane
                    .run(move || evaluate(&evaluator, &switches, &page.events))
                    .await
                    .ok_or_else(|| {
                        StoreError::Engine(
                            "the detection thread did not start or stopped (a panic)".into(),
                        )
                    })?;
                findings.extend(raised);
                cursor = last;
            }
            let caught_up = page.last_seq.is_none();
            let due = cursor - committed >= COMMIT_EVENTS || since.elapsed() >= COMMIT_EVERY;
            if cursor > committed && (caught_up || due) {
                if !findings.is_empty() {
                    tracing::info!(count = findings.len(), "Detection findings raised");
                }
                let state = self.evaluator().take_changed_baselines();
                self.store
                    .commit_findings(CONSUMER, cursor, &findings, &state)
                    .await?;
                findings.clear();
                committed = cursor;
                since = Instant::now();
            }
            if caught_up {
                return Ok(());
            }
        }
    }

    /// The evaluator, between pages (no page is being evaluated while the worker holds it).
    fn evaluator(&self) -> std::sync::MutexGuard<'_, Evaluator> {
        self.evaluator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Evaluates stored documents, each read for what the rules need rather than parsed whole
/// (`RuleSet::read_event`). A body that no longer reads as an event is skipped with a warning
/// rather than wedging the log.
fn evaluate(
    evaluator: &Mutex<Evaluator>,
    switches: &RuleSwitches,
    events: &[StoredBody],
) -> Vec<(String, DetectionFinding)> {
    let mut evaluator = evaluator
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = vigil_ocsf::now_ms();
    let mut out = Vec::new();
    let mut raised = Vec::new();
    for stored in events {
        let evaluated = evaluator.evaluate_json(
            &stored.sensor_id,
            stored.body.as_bytes(),
            now,
            |id| switches.enabled(id),
            &mut raised,
        );
        if let Err(error) = evaluated {
            tracing::warn!(seq = stored.seq, %error, "Skipping malformed stored event");
        }
        out.extend(raised.drain(..).map(|f| (stored.sensor_id.clone(), f)));
    }
    if let Some(newest) = events.iter().map(|e| e.time).max() {
        evaluator.expire(newest);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use vigil_ocsf::Event;

    use super::*;
    use crate::bus::InProcessBus;
    use crate::store::FindingQuery;
    use crate::store::sqlite::SqliteStore;

    const RULE: &str = "
title: marker
id: 5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81
logsource: {category: process_creation, product: linux}
detection: {sel: {CommandLine|contains: switch-test-marker}, condition: sel}
level: high
";

    #[tokio::test]
    async fn a_switched_off_rule_raises_nothing_until_switched_on() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap();
        let (rules, _) = RuleSet::load_str(RULE, Path::new("t.yml"), &maps);
        let switches = RuleSwitches::new(["5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81".to_owned()]);
        let mut worker = DetectWorker::with_switches(
            Arc::clone(&store),
            Arc::new(InProcessBus::new()),
            Arc::new(rules),
            switches.clone(),
        );
        let ev = |uid: &str| {
            Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": 1,
                "metadata": {"uid": uid},
                "process": {"pid": 7, "cmd_line": "sh -c switch-test-marker"}}))
            .unwrap()
        };
        store.insert_events("s1", &[ev("e1")]).await.unwrap();
        worker.drain().await.unwrap();
        let q = FindingQuery {
            limit: 10,
            ..Default::default()
        };
        assert!(store.query_findings(&q).await.unwrap().is_empty());
        switches.set("5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81", true);
        store.insert_events("s1", &[ev("e2")]).await.unwrap();
        worker.drain().await.unwrap();
        assert_eq!(store.query_findings(&q).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_baseline_flags_new_lineages_after_learning_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap();
        let cfg = BaselineConfig {
            learning_ms: 1000,
            ..BaselineConfig::default()
        };
        let worker = |store: &Arc<dyn Store>| {
            let (rules, _) = RuleSet::load_str(RULE, Path::new("t.yml"), &maps);
            DetectWorker::new(
                Arc::clone(store),
                Arc::new(InProcessBus::new()),
                Arc::new(rules),
            )
            .with_baseline(cfg)
        };
        let exec = |uid: &str, time: i64, parent: &str, child: &str| {
            Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": time,
                "metadata": {"uid": uid},
                "process": {"file": {"path": child}},
                "actor": {"process": {"file": {"path": parent}}}}))
            .unwrap()
        };
        let baseline_titles = async |store: &Arc<dyn Store>| {
            let q = FindingQuery {
                limit: 100,
                ..Default::default()
            };
            let mut t: Vec<String> = store
                .query_findings(&q)
                .await
                .unwrap()
                .into_iter()
                .filter(|f| f.body["finding_info"]["analytic"]["category"] == "baseline")
                .map(|f| f.body["finding_info"]["related_events"][0]["uid"].to_string())
                .collect();
            t.sort();
            t
        };

        let mut w = worker(&store);
        w.restore_baselines().await.unwrap();
        let learned: Vec<Event> = (0..5)
            .map(|i| exec(&format!("l{i}"), i * 100, "/bin/bash", "/bin/ls"))
            .collect();
        store.insert_events("s1", &learned).await.unwrap();
        // Another endpoint learns on its own clock: nothing of s1's counts for it.
        store
            .insert_events("s2", &[exec("o1", 0, "/usr/sbin/cron", "/bin/sh")])
            .await
            .unwrap();
        w.drain().await.unwrap();
        assert!(
            baseline_titles(&store).await.is_empty(),
            "nothing while learning"
        );

        // A restarted worker keeps what was learned: ls is known, nginx → sh is new.
        let mut w = worker(&store);
        w.restore_baselines().await.unwrap();
        store
            .insert_events(
                "s1",
                &[
                    exec("a1", 5000, "/bin/bash", "/bin/ls"),
                    exec("a2", 5001, "/usr/sbin/nginx", "/bin/sh"),
                ],
            )
            .await
            .unwrap();
        w.drain().await.unwrap();
        assert_eq!(baseline_titles(&store).await, ["\"a2\""]);
        let saved = store.detector_states(CONSUMER).await.unwrap();
        assert_eq!(
            saved.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
            ["s1", "s2"]
        );
    }
}
