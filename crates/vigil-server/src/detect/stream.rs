//! Detection at scale: the worker reads JetStream's detection queue instead of the store's log.
//!
//! Events are partitioned by endpoint ([`crate::bus::nats::partition_of`]); each partition is a
//! durable pull consumer owned by one worker at a time ([`crate::bus::lease`]), so an endpoint's
//! correlation state and baseline live on one worker. For each fetched group of messages the
//! worker evaluates the events, commits the findings and the changed baselines to the store,
//! and only then acknowledges the messages: a worker that dies leaves them unacknowledged and
//! JetStream redelivers them to the partition's next owner. Finding ids are deterministic, so a
//! redelivered event raises the same finding, stored once.
//!
//! The same event can reach the bus twice (a sensor re-sends a batch whose acknowledgement it
//! lost, after JetStream's duplicate window): each partition remembers the ids of the events it
//! evaluated recently and skips them, so a correlation counts every event once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_detect::{BaselineConfig, CorrelationLimits, Evaluator, RuleSet};
use vigil_ocsf::DetectionFinding;

use crate::bus::nats::NatsBus;
use crate::store::Store;
use crate::switches::RuleSwitches;

/// Messages (batches) fetched per round.
const FETCH: usize = 256;
/// How long a fetch waits for messages before the worker looks at its stop signal again.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// How long to wait before retrying after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Event ids each partition remembers to drop re-sent events.
const RECENT: usize = 65_536;

/// The store consumer name of a partition (its baselines are saved under it).
pub fn consumer_name(partition: u16) -> String {
    format!("detect/p{partition}")
}

/// What every partition task shares.
#[derive(Clone)]
struct Shared {
    bus: Arc<NatsBus>,
    store: Arc<dyn Store>,
    rules: Arc<RuleSet>,
    switches: RuleSwitches,
    baseline: Option<BaselineConfig>,
}

/// A detection worker over the JetStream bus.
pub struct StreamDetector {
    shared: Shared,
}

impl StreamDetector {
    /// A worker evaluating `rules` over the events on `bus`, committing to `store`.
    pub fn new(
        bus: Arc<NatsBus>,
        store: Arc<dyn Store>,
        rules: Arc<RuleSet>,
        switches: RuleSwitches,
        baseline: Option<BaselineConfig>,
    ) -> Self {
        Self {
            shared: Shared {
                bus,
                store,
                rules,
                switches,
                baseline,
            },
        }
    }

    /// Claims partitions and evaluates them until `shutdown`; then finishes the groups in hand,
    /// and gives the partitions back.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.shared.bus.config().clone();
        let (owned_tx, mut owned) = watch::channel(BTreeSet::new());
        let leases_stop = CancellationToken::new();
        let leases = tokio::spawn(crate::bus::lease::run(
            self.shared.bus.lease_bucket().clone(),
            cfg.instance.clone(),
            cfg.partitions,
            cfg.lease_ttl,
            owned_tx,
            leases_stop.clone(),
        ));
        let mut tasks: HashMap<u16, (CancellationToken, JoinHandle<()>)> = HashMap::new();
        loop {
            let want = owned.borrow_and_update().clone();
            tasks.retain(|p, (stop, _)| {
                let keep = want.contains(p);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for p in want {
                tasks.entry(p).or_insert_with(|| {
                    let stop = CancellationToken::new();
                    let task = tokio::spawn(partition(self.shared.clone(), p, stop.clone()));
                    (stop, task)
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = owned.changed() => if r.is_err() { break },
            }
        }
        for (stop, _) in tasks.values() {
            stop.cancel();
        }
        for (_, (_, task)) in tasks {
            let _ = task.await;
        }
        // Only now: the partitions' groups are committed and acknowledged.
        leases_stop.cancel();
        let _ = leases.await;
    }
}

/// Evaluates one partition until `stop`.
async fn partition(shared: Shared, p: u16, stop: CancellationToken) {
    let name = consumer_name(p);
    let mut fresh = true;
    let mut state: Option<PartitionState> = None;
    let mut consumer: Option<PullConsumer> = None;
    while !stop.is_cancelled() {
        if fresh {
            state = None;
            fresh = false;
        }
        let st = match state.as_mut() {
            Some(st) => st,
            None => match PartitionState::restore(&shared, &name).await {
                Ok(st) => state.insert(st),
                Err(error) => {
                    tracing::error!(%error, partition = p, "Cannot restore the partition's baselines; retrying");
                    pause(&stop).await;
                    continue;
                }
            },
        };
        let c = match consumer.as_ref() {
            Some(c) => c,
            None => match shared.bus.partition_consumer(p).await {
                Ok(c) => consumer.insert(c),
                Err(error) => {
                    tracing::error!(%error, partition = p, "Cannot open the partition's consumer; retrying");
                    pause(&stop).await;
                    continue;
                }
            },
        };
        match round(&shared, &name, c, st, &stop).await {
            Ok(()) => {}
            Err(error) => {
                // Nothing of the group was acknowledged: JetStream redelivers it. Start over
                // from the committed baselines, so what was observed is not counted twice.
                tracing::error!(%error, partition = p, "Detection failed on a partition; its events will be redelivered");
                fresh = true;
                consumer = None;
                pause(&stop).await;
            }
        }
    }
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(RETRY) => {}
    }
}

/// One partition's evaluator and the ids of the events it evaluated recently.
struct PartitionState {
    evaluator: Evaluator,
    recent: HashSet<u64>,
    order: VecDeque<u64>,
}

impl PartitionState {
    async fn restore(shared: &Shared, name: &str) -> Result<Self, String> {
        let mut evaluator = Evaluator::new(Arc::clone(&shared.rules), CorrelationLimits::default());
        if let Some(cfg) = shared.baseline {
            evaluator = evaluator.with_baseline(cfg);
            let saved = shared
                .store
                .detector_states(name)
                .await
                .map_err(|e| e.to_string())?;
            for host in evaluator.restore_baselines(&saved) {
                tracing::warn!(sensor_id = %host, "Unreadable behaviour baseline; the endpoint learns again");
            }
        }
        Ok(Self {
            evaluator,
            recent: HashSet::with_capacity(RECENT),
            order: VecDeque::with_capacity(RECENT),
        })
    }

    /// Whether the event is new to this partition (and remembers it).
    fn first_time(&mut self, sensor: &str, uid: &str) -> bool {
        let key = id_hash(sensor, uid);
        if !self.recent.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > RECENT
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        true
    }
}

fn id_hash(sensor: &str, uid: &str) -> u64 {
    crate::bus::nats::fnv1a(sensor.bytes().chain([0]).chain(uid.bytes()))
}

/// Fetches one group, evaluates it, commits the findings, acknowledges the group.
async fn round(
    shared: &Shared,
    name: &str,
    consumer: &PullConsumer,
    st: &mut PartitionState,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut batch = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        b = consumer.fetch().max_messages(FETCH).expires(FETCH_WAIT).messages() => b.map_err(|e| e.to_string())?,
    };
    let mut messages = Vec::new();
    while let Some(m) = batch.next().await {
        messages.push(m.map_err(|e| e.to_string())?);
    }
    if messages.is_empty() {
        return Ok(());
    }
    let now = vigil_ocsf::now_ms();
    let mut findings: Vec<(String, DetectionFinding)> = Vec::new();
    let mut raised = Vec::new();
    let mut newest = None::<i64>;
    let mut through = 0u64;
    for m in &messages {
        if let Ok(info) = m.info() {
            through = through.max(info.stream_sequence);
        }
        let Some(sensor) = sensor_of(&m.subject) else {
            tracing::warn!(subject = %m.subject, "Message on the detection queue with an unexpected subject; skipped");
            continue;
        };
        // Each event is read for what the rules need, not parsed whole
        // (`RuleSet::read_event`).
        let docs: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(&m.payload) {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(%error, subject = %m.subject, "Unreadable batch on the detection queue; skipped");
                continue;
            }
        };
        for doc in docs {
            let json = doc.get().as_bytes();
            let event = match st.evaluator.rules().read_event(json) {
                Ok(e) => e,
                Err(error) => {
                    tracing::warn!(%error, "Unreadable event on the detection queue; skipped");
                    continue;
                }
            };
            if !st.first_time(&sensor, &event.uid) {
                continue;
            }
            let switches = &shared.switches;
            st.evaluator.evaluate_read(
                &sensor,
                &event,
                json,
                now,
                |id| switches.enabled(id),
                &mut raised,
            );
            findings.extend(raised.drain(..).map(|f| (sensor.clone(), f)));
            newest = Some(newest.map_or(event.time, |n| n.max(event.time)));
        }
    }
    if let Some(newest) = newest {
        st.evaluator.expire(newest);
    }
    let states = st.evaluator.take_changed_baselines();
    let committed = shared
        .store
        .commit_findings(
            name,
            i64::try_from(through).unwrap_or(i64::MAX),
            &findings,
            &states,
        )
        .await;
    if let Err(error) = committed {
        // Back to the stream at once rather than after the ack wait: the partition retries as
        // soon as the store answers again.
        for m in &messages {
            let _ = m.ack_with(async_nats::jetstream::AckKind::Nak(None)).await;
        }
        return Err(error.to_string());
    }
    for m in &messages {
        m.ack().await.map_err(|e| e.to_string())?;
    }
    if !findings.is_empty() {
        tracing::info!(count = findings.len(), "Detection findings raised");
    }
    for (_, f) in &findings {
        if let Ok(json) = serde_json::to_vec(f)
            && let Err(error) = shared.bus.publish_finding(&f.finding_info.uid, json).await
        {
            tracing::warn!(%error, "A finding is stored but not published on the bus");
        }
    }
    Ok(())
}

/// The sensor id in `<prefix>.detect.<partition>.<sensor>`.
fn sensor_of(subject: &str) -> Option<String> {
    let (_, sensor) = subject.rsplit_once('.')?;
    percent_decode(sensor)
}

fn percent_decode(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod fault_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::nats::subject_token;

    #[test]
    fn sensor_ids_survive_the_subject() {
        for id in ["7f3c", "edr:host-1", "a.b*c>d e%f", "ü.x"] {
            let subject = format!("vigil.detect.3.{}", subject_token(id));
            assert_eq!(subject.split('.').count(), 4, "{subject}");
            assert_eq!(sensor_of(&subject).as_deref(), Some(id));
        }
    }
}
