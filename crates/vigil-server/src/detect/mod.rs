//! The detection worker: reads the durable event log from its cursor, evaluates the rule set,
//! and commits findings together with the new cursor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use vigil_detect::{CorrelationLimits, Evaluator, RuleSet};
use vigil_ocsf::DetectionFinding;

use crate::bus::Bus;
use crate::store::{Store, StoreError, StoredEvent};
use crate::switches::RuleSwitches;

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
    /// The rules, with correlation state per endpoint (its events stay on this worker).
    evaluator: Evaluator,
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
            evaluator: Evaluator::new(rules, CorrelationLimits::default()),
        }
    }

    /// Runs until `shutdown` is cancelled; finishes the page in hand first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut wake = self.bus.subscribe_events();
        loop {
            match self.drain().await {
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
            let page = self.store.events_after(cursor, PAGE).await?;
            if let Some(last) = page.last_seq {
                findings.extend(self.evaluate(&page.events));
                cursor = last;
            }
            let caught_up = page.last_seq.is_none();
            let due = cursor - committed >= COMMIT_EVENTS || since.elapsed() >= COMMIT_EVERY;
            if cursor > committed && (caught_up || due) {
                if !findings.is_empty() {
                    tracing::info!(count = findings.len(), "Detection findings raised");
                }
                self.store
                    .commit_findings(CONSUMER, cursor, &findings)
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

    fn evaluate(&mut self, events: &[StoredEvent]) -> Vec<(String, DetectionFinding)> {
        let now = vigil_ocsf::now_ms();
        let mut out = Vec::new();
        let mut raised = Vec::new();
        for stored in events {
            let switches = &self.switches;
            self.evaluator.evaluate(
                &stored.sensor_id,
                &stored.event,
                now,
                |id| switches.enabled(id),
                &mut raised,
            );
            out.extend(raised.drain(..).map(|f| (stored.sensor_id.clone(), f)));
        }
        if let Some(newest) = events.iter().map(|e| e.event.time).max() {
            self.evaluator.expire(newest);
        }
        out
    }
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
}
