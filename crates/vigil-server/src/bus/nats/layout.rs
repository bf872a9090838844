//! Where the bus puts things: the configuration, the subjects and how batches become
//! messages.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_ocsf::RawEvent;

/// Largest message payload the bus writes (NATS refuses more than `max_payload`, 1 MiB by
/// default): a batch larger than this is split.
pub(super) const MAX_PAYLOAD: usize = 512 * 1024;

/// How to reach NATS and lay out the streams.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// Subject prefix and stream-name prefix (`vigil` → `vigil.events…`, `VIGIL_EVENTS`).
    pub prefix: String,
    /// Detection partitions. Fixed for the life of the stream: every instance must agree.
    pub partitions: u16,
    /// How long events stay in the streams (they are durable in the store as well).
    pub max_age: Duration,
    /// How long a detection worker's claim on a partition lasts without renewal.
    pub lease_ttl: Duration,
    /// How long JetStream waits for a detection worker to acknowledge a batch before it
    /// hands the batch to the partition's next owner.
    pub ack_wait: Duration,
    /// This instance's name (in notices, leases and client names); unique per process.
    pub instance: String,
}

impl NatsConfig {
    /// Defaults for `url`: prefix `vigil`, 32 partitions, a day of events, 10 s leases, 30 s
    /// to acknowledge.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: "vigil".to_owned(),
            partitions: 32,
            max_age: Duration::from_secs(24 * 3600),
            lease_ttl: Duration::from_secs(10),
            ack_wait: Duration::from_secs(30),
            instance: format!(
                "{}-{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "vigil".to_owned()),
                uuid::Uuid::new_v4().simple()
            ),
        }
    }

    pub(super) fn stream_name(&self, what: &str) -> String {
        format!(
            "{}_{what}",
            self.prefix.to_uppercase().replace(['.', '-'], "_")
        )
    }

    /// The subject of one endpoint's batch of one class: `<prefix>.events.<class>.<sensor>`.
    pub fn event_subject(&self, class_uid: u32, sensor_id: &str) -> String {
        format!(
            "{}.events.{}.{}",
            self.prefix,
            class_token(class_uid),
            subject_token(sensor_id)
        )
    }

    /// The subject of one endpoint's batch on the detection queue:
    /// `<prefix>.detect.<partition>.<sensor>`.
    pub fn detect_subject(&self, sensor_id: &str) -> String {
        format!(
            "{}.detect.{}.{}",
            self.prefix,
            partition_of(sensor_id, self.partitions),
            subject_token(sensor_id)
        )
    }

    /// The stream of one class's events (`VIGIL_EVENTS_PROCESS_ACTIVITY`).
    pub(super) fn class_stream(&self, token: &str) -> String {
        self.stream_name(&format!("EVENTS_{}", token.to_uppercase()))
    }

    /// The subject of a command notice for one endpoint: `<prefix>.commands.<sensor>`.
    pub fn commands_subject(&self, sensor_id: &str) -> String {
        format!("{}.commands.{}", self.prefix, subject_token(sensor_id))
    }
}

/// The subject token naming an OCSF class.
pub fn class_token(class_uid: u32) -> String {
    match class_uid {
        1001 => "file_activity".to_owned(),
        1007 => "process_activity".to_owned(),
        3002 => "authentication".to_owned(),
        4001 => "network_activity".to_owned(),
        4003 => "dns_activity".to_owned(),
        2004 => "detection_finding".to_owned(),
        other => format!("class_{other}"),
    }
}

/// A sensor id as one subject token: the characters NATS gives meaning to are percent-encoded.
pub fn subject_token(sensor_id: &str) -> String {
    let mut out = String::with_capacity(sensor_id.len());
    for c in sensor_id.chars() {
        match c {
            '.' | '*' | '>' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_whitespace() || c.is_control() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The detection partition of an endpoint: FNV-1a of its id, so every instance and every
/// version computes the same one.
pub fn partition_of(sensor_id: &str, partitions: u16) -> u16 {
    (fnv1a(sensor_id.bytes()) % u64::from(partitions.max(1))) as u16
}

/// 64-bit FNV-1a: stable across processes and versions (unlike the standard library's hasher).
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
/// Splits batches into messages, as (subject, message id, JSON array): for each endpoint one
/// message per class on its class stream, then the whole batch, every class in order, on the
/// detection queue; none larger than [`MAX_PAYLOAD`] bytes.
pub fn encode_batches(
    cfg: &NatsConfig,
    batches: &[(String, Vec<RawEvent>)],
) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (sensor, events) in batches {
        let mut by_class: BTreeMap<u32, Vec<&RawEvent>> = BTreeMap::new();
        for e in events {
            by_class.entry(e.class_uid).or_default().push(e);
        }
        for (class, events) in by_class {
            chunk(&cfg.event_subject(class, sensor), sensor, events, &mut out);
        }
        chunk(&cfg.detect_subject(sensor), sensor, events, &mut out);
    }
    out
}

/// One endpoint's events as messages on `subject`, in order, split at [`MAX_PAYLOAD`].
fn chunk<'a>(
    subject: &str,
    sensor: &str,
    events: impl IntoIterator<Item = &'a RawEvent>,
    out: &mut Vec<(String, String, Vec<u8>)>,
) {
    let mut payload = Vec::new();
    let mut first = "";
    let mut last = "";
    let mut count = 0usize;
    for e in events {
        if count > 0 && payload.len() + e.json.len() + 2 > MAX_PAYLOAD {
            payload.push(b']');
            out.push((
                subject.to_owned(),
                message_id(sensor, first, last, count),
                std::mem::take(&mut payload),
            ));
            count = 0;
        }
        if count == 0 {
            payload.reserve(MAX_PAYLOAD.min(64 * 1024));
            payload.push(b'[');
            first = &e.uid;
        } else {
            payload.push(b',');
        }
        payload.extend_from_slice(&e.json);
        last = &e.uid;
        count += 1;
    }
    if count > 0 {
        payload.push(b']');
        out.push((
            subject.to_owned(),
            message_id(sensor, first, last, count),
            payload,
        ));
    }
}

/// Identifies a message by its endpoint and the events it holds, so JetStream drops the same
/// batch published twice inside its duplicate window.
fn message_id(sensor: &str, first: &str, last: &str, count: usize) -> String {
    format!("{sensor}/{first}/{last}/{count}")
}
