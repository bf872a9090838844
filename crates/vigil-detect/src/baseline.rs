//! A per-host behaviour baseline: which programs start which (parent executable → executable)
//! and where each executable connects out to. After a learning period a host's baseline flags
//! what it has never or rarely seen, as low-severity findings with the analytic category
//! `baseline` and a score.
//!
//! Semantics:
//! - The learning period runs, in event time, from the first event the baseline sees of the
//!   host, for [`BaselineConfig::learning_ms`]. During it everything is recorded, nothing
//!   flagged.
//! - After it, a lineage or destination never seen is flagged `first-seen` (score 60); one seen
//!   fewer than [`BaselineConfig::rare_below`] times is flagged `rare` (score 30). Either way it
//!   is recorded, so it stops being flagged once it became common.
//! - Memory is bounded: each map keeps at most [`BaselineConfig::max_entries`] entries; when
//!   full, the tenth least recently seen are forgotten (they are first-seen again if they come
//!   back).
//! - The state serializes (serde), so a restarted server does not relearn.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_ocsf::{Analytic, DetectionFinding, Event, Evidence, FindingInfo, Severity, class};

/// Baseline settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaselineConfig {
    /// How long a host is learned before anything is flagged (event time, ms).
    pub learning_ms: i64,
    /// Seen fewer times than this (after learning) is rare.
    pub rare_below: u32,
    /// Most entries per map per host.
    pub max_entries: usize,
}

impl Default for BaselineConfig {
    /// Seven days of learning, rare below 3 sightings, 4,096 entries per map.
    fn default() -> Self {
        Self {
            learning_ms: 7 * 24 * 3600 * 1000,
            rare_below: 3,
            max_entries: 4096,
        }
    }
}

/// How often and when something was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    count: u32,
    first: i64,
    last: i64,
}

/// One host's baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBaseline {
    /// Event time of the first event seen; the learning period starts there.
    started: Option<i64>,
    /// `parent\u{1f}child` executable paths.
    lineages: HashMap<String, Seen>,
    /// `executable\u{1f}destination address`.
    destinations: HashMap<String, Seen>,
    /// Whether anything a later decision depends on changed since [`HostBaseline::take_changed`]
    /// (a new entry, a count still under the rare threshold, the start): only then is the
    /// state worth saving. Last-seen times alone (eviction order) are not.
    #[serde(skip)]
    changed: bool,
}

/// What the baseline flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Novelty {
    /// Never seen on this host.
    FirstSeen,
    /// Seen, but fewer than [`BaselineConfig::rare_below`] times.
    Rare,
}

impl Novelty {
    /// The finding's score (0–100).
    pub fn score(self) -> u8 {
        match self {
            Self::FirstSeen => 60,
            Self::Rare => 30,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::FirstSeen => "first-seen",
            Self::Rare => "rare",
        }
    }
}

/// The analytic ids of the two baselines.
pub const LINEAGE_ANALYTIC: &str = "baseline:process-lineage";
/// See [`LINEAGE_ANALYTIC`].
pub const DESTINATION_ANALYTIC: &str = "baseline:outbound-destination";

impl HostBaseline {
    /// Records `event` and answers the finding it deserves, if any. Only process launches
    /// (execs, not forks) and outbound connection attempts count.
    pub fn observe(
        &mut self,
        event: &Event,
        cfg: &BaselineConfig,
        now_ms: i64,
    ) -> Option<DetectionFinding> {
        self.observe_with(event, || event, cfg, now_ms)
    }

    /// [`HostBaseline::observe`] for an event read in part ([`crate::RuleSet::read_event`]):
    /// `whole` gives the whole event, for the finding's evidence.
    pub(crate) fn observe_with<'w>(
        &mut self,
        event: &Event,
        whole: impl FnOnce() -> &'w Event,
        cfg: &BaselineConfig,
        now_ms: i64,
    ) -> Option<DetectionFinding> {
        let (analytic, key) = subject(event)?;
        if self.started.is_none() {
            self.changed = true;
        }
        let started = *self.started.get_or_insert(event.time);
        let learning = event.time < started.saturating_add(cfg.learning_ms);
        let map = if analytic == LINEAGE_ANALYTIC {
            &mut self.lineages
        } else {
            &mut self.destinations
        };
        let flag =
            |n: Novelty, key: &str| (!learning).then(|| finding(whole(), analytic, key, n, now_ms));
        match map.get_mut(&key) {
            Some(seen) => {
                seen.count = seen.count.saturating_add(1);
                seen.last = seen.last.max(event.time);
                let rare = seen.count <= cfg.rare_below;
                self.changed |= rare;
                if rare {
                    flag(Novelty::Rare, &key)
                } else {
                    None
                }
            }
            None => {
                let found = flag(Novelty::FirstSeen, &key);
                if map.len() >= cfg.max_entries.max(1) {
                    forget_oldest(map, cfg.max_entries.max(1));
                }
                map.insert(
                    key,
                    Seen {
                        count: 1,
                        first: event.time,
                        last: event.time,
                    },
                );
                self.changed = true;
                found
            }
        }
    }

    /// Whether the state changed in a way later decisions depend on since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Entries held (lineages, destinations).
    pub fn len(&self) -> (usize, usize) {
        (self.lineages.len(), self.destinations.len())
    }

    /// Whether nothing was learned yet.
    pub fn is_empty(&self) -> bool {
        self.started.is_none()
    }
}

/// Forgets the least recently seen tenth of a full map.
fn forget_oldest(map: &mut HashMap<String, Seen>, max: usize) {
    let mut lasts: Vec<i64> = map.values().map(|s| s.last).collect();
    let cut = (max / 10).max(1).min(lasts.len() - 1);
    let (_, threshold, _) = lasts.select_nth_unstable(cut);
    let threshold = *threshold;
    let mut dropped = 0usize;
    map.retain(|_, s| {
        let keep = s.last > threshold || dropped >= cut;
        if !keep {
            dropped += 1;
        }
        keep
    });
}

/// Every attribute [`subject`] reads: a partial read ([`crate::RuleSet::read_event`]) keeps
/// them all.
pub(crate) const PATHS: &[&str] = &[
    "activity_id",
    "launch_type_id",
    "process.file.path",
    "actor.process.file.path",
    "process.parent_process.file.path",
    "connection_info.direction_id",
    "dst_endpoint.ip",
];

/// What an event says to the baseline: its analytic and key (`parent\u{1f}child` or
/// `executable\u{1f}address`). Per event, so it builds nothing else. Reads [`PATHS`] only.
fn subject(event: &Event) -> Option<(&'static str, String)> {
    let text = |path: &str| {
        event
            .get(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match event.class_uid {
        class::PROCESS_ACTIVITY => {
            let launch = event.get("activity_id").and_then(Value::as_u64) == Some(1);
            let fork = event.get("launch_type_id").and_then(Value::as_u64) == Some(2);
            if !launch || fork {
                return None;
            }
            let child = text("process.file.path")?;
            let parent = text("actor.process.file.path")
                .or_else(|| text("process.parent_process.file.path"))
                .unwrap_or("?");
            Some((LINEAGE_ANALYTIC, format!("{parent}\u{1f}{child}")))
        }
        class::NETWORK_ACTIVITY => {
            let outbound = event
                .get("connection_info.direction_id")
                .and_then(Value::as_u64)
                == Some(2);
            let open = event.get("activity_id").and_then(Value::as_u64) == Some(1);
            if !outbound || !open {
                return None;
            }
            let exe = text("actor.process.file.path")?;
            let ip = text("dst_endpoint.ip")?;
            Some((DESTINATION_ANALYTIC, format!("{exe}\u{1f}{ip}")))
        }
        _ => None,
    }
}

fn finding(
    event: &Event,
    analytic: &str,
    key: &str,
    novelty: Novelty,
    now_ms: i64,
) -> DetectionFinding {
    let (from, to) = key.split_once('\u{1f}').unwrap_or((key, ""));
    let what = if analytic == LINEAGE_ANALYTIC {
        format!("{from} started {to}")
    } else {
        format!("{from} connected to {to}")
    };
    let title = match (analytic, novelty) {
        (LINEAGE_ANALYTIC, Novelty::FirstSeen) => "Baseline: first-seen process lineage",
        (LINEAGE_ANALYTIC, Novelty::Rare) => "Baseline: rare process lineage",
        (_, Novelty::FirstSeen) => "Baseline: first-seen outbound destination",
        (_, Novelty::Rare) => "Baseline: rare outbound destination",
    };
    let info = FindingInfo {
        uid: crate::finding_uid(analytic, &event.uid),
        title: title.into(),
        desc: Some(format!(
            "{what}: {} on this host since its baseline was learned",
            match novelty {
                Novelty::FirstSeen => "never seen",
                Novelty::Rare => "seldom seen",
            }
        )),
        analytic: Analytic {
            uid: analytic.into(),
            name: title.into(),
            type_id: 5,
            category: "baseline".into(),
        },
        attacks: Vec::new(),
        types: vec!["baseline".into()],
        related_events: vec![vigil_ocsf::RelatedEvent {
            uid: event.uid.clone(),
        }],
        related_events_count: Some(1),
    };
    let mut f = DetectionFinding::new(now_ms, Severity::Low, info);
    f.device = event
        .get("device")
        .and_then(|d| serde_json::from_value(d.clone()).ok());
    f.evidences.push(Evidence {
        process: event.get("process").cloned(),
        actor: event.get("actor").cloned(),
        src_endpoint: event.get("src_endpoint").cloned(),
        dst_endpoint: event.get("dst_endpoint").cloned(),
        ..Evidence::default()
    });
    f.unmapped =
        Some(json!({ "baseline": { "novelty": novelty.as_str(), "score": novelty.score() } }));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(uid: &str, time: i64, parent: &str, child: &str) -> Event {
        Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": time,
            "metadata": {"uid": uid}, "device": {"hostname": "h1"},
            "process": {"pid": 2, "file": file(child)},
            "actor": {"process": {"pid": 1, "file": file(parent)}}}))
        .unwrap()
    }

    /// A process image as the sensor describes it.
    fn file(path: &str) -> serde_json::Value {
        let name = path.rsplit('/').next().unwrap_or(path);
        json!({"path": path, "name": name, "type_id": 1})
    }

    fn connect(uid: &str, time: i64, exe: &str, ip: &str) -> Event {
        Event::from_value(json!({"class_uid": 4001, "activity_id": 1, "time": time,
            "metadata": {"uid": uid}, "connection_info": {"direction_id": 2},
            "actor": {"process": {"file": {"path": exe}}}, "dst_endpoint": {"ip": ip, "port": 443}}))
        .unwrap()
    }

    const CFG: BaselineConfig = BaselineConfig {
        learning_ms: 1000,
        rare_below: 3,
        max_entries: 100,
    };

    #[test]
    fn nothing_is_flagged_while_learning_then_new_lineages_are() {
        let mut b = HostBaseline::default();
        assert!(
            b.observe(&exec("1", 0, "/bin/bash", "/bin/ls"), &CFG, 0)
                .is_none()
        );
        assert!(
            b.observe(&exec("2", 500, "/bin/bash", "/usr/bin/id"), &CFG, 0)
                .is_none()
        );
        for i in 0..3 {
            let e = exec(&format!("l{i}"), 600 + i, "/bin/bash", "/bin/ls");
            assert!(b.observe(&e, &CFG, 0).is_none());
        }
        // Learned: ls is common, id rare (once), curl from nginx never seen.
        assert!(
            b.observe(&exec("3", 2000, "/bin/bash", "/bin/ls"), &CFG, 0)
                .is_none()
        );
        let rare = b
            .observe(&exec("4", 2001, "/bin/bash", "/usr/bin/id"), &CFG, 0)
            .unwrap();
        assert_eq!(rare.finding_info.title, "Baseline: rare process lineage");
        assert_eq!(rare.unmapped.as_ref().unwrap()["baseline"]["score"], 30);
        let new = b
            .observe(
                &exec("5", 2002, "/usr/sbin/nginx", "/usr/bin/curl"),
                &CFG,
                9,
            )
            .unwrap();
        assert_eq!(
            new.finding_info.title,
            "Baseline: first-seen process lineage"
        );
        assert_eq!(new.finding_info.analytic.category, "baseline");
        assert_eq!(new.severity_id, Severity::Low as u8);
        assert!(new.finding_info.related_event_uids().eq(["5"]));
        let schemas = vigil_ocsf::schema::Schemas::linux_edr().unwrap();
        for finding in [&rare, &new] {
            let event = vigil_ocsf::Event::from_record(finding).unwrap();
            assert_eq!(
                schemas.check(&event),
                Ok(()),
                "a baseline finding is valid OCSF"
            );
        }
        assert_eq!(
            new.finding_info.uid,
            crate::finding_uid(LINEAGE_ANALYTIC, "5")
        );
        // Seen often enough, it stops being flagged.
        let again = |b: &mut HostBaseline, uid: &str| {
            b.observe(
                &exec(uid, 2003, "/usr/sbin/nginx", "/usr/bin/curl"),
                &CFG,
                0,
            )
        };
        assert!(again(&mut b, "6").is_some());
        assert!(again(&mut b, "7").is_some());
        assert!(again(&mut b, "8").is_none());
    }

    #[test]
    fn outbound_destinations_are_per_executable() {
        let mut b = HostBaseline::default();
        for i in 0..4 {
            b.observe(
                &connect(&format!("c{i}"), i, "/usr/bin/apt", "151.101.2.132"),
                &CFG,
                0,
            );
        }
        assert!(
            b.observe(
                &connect("a", 5000, "/usr/bin/apt", "151.101.2.132"),
                &CFG,
                0
            )
            .is_none()
        );
        let f = b
            .observe(
                &connect("b", 5001, "/usr/bin/python3", "151.101.2.132"),
                &CFG,
                0,
            )
            .unwrap();
        assert_eq!(
            f.finding_info.title,
            "Baseline: first-seen outbound destination"
        );
        assert_eq!(
            f.evidences[0].dst_endpoint.as_ref().unwrap()["ip"],
            "151.101.2.132"
        );
        // Inbound and forks are not part of it.
        let inbound = Event::from_value(json!({"class_uid": 4001, "activity_id": 1, "time": 6000,
            "connection_info": {"direction_id": 1}, "actor": {"process": {"file": {"path": "/x"}}},
            "dst_endpoint": {"ip": "10.0.0.1"}}))
        .unwrap();
        assert!(b.observe(&inbound, &CFG, 0).is_none());
        assert_eq!(b.len(), (0, 2));
    }

    #[test]
    fn memory_stays_bounded_and_the_state_round_trips() {
        let cfg = BaselineConfig {
            max_entries: 50,
            ..CFG
        };
        let mut b = HostBaseline::default();
        for i in 0..500 {
            b.observe(
                &exec(&i.to_string(), i, "/bin/sh", &format!("/tmp/{i}")),
                &cfg,
                0,
            );
            assert!(b.len().0 <= 50);
        }
        // The most recent survive eviction.
        assert!(
            b.observe(&exec("x", 2000, "/bin/sh", "/tmp/499"), &cfg, 0)
                .is_some_and(|f| f.finding_info.title == "Baseline: rare process lineage")
        );
        assert!(b.take_changed() && !b.take_changed());
        let text = serde_json::to_string(&b).unwrap();
        let back: HostBaseline = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
        // A lineage seen often enough changes nothing worth saving.
        for uid in ["y1", "y2", "y3"] {
            b.observe(&exec(uid, 2001, "/bin/sh", "/tmp/499"), &cfg, 0);
        }
        b.take_changed();
        b.observe(&exec("y4", 2002, "/bin/sh", "/tmp/499"), &cfg, 0);
        assert!(!b.take_changed());
    }
}
