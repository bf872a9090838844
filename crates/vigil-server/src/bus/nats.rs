//! The scale-out bus on NATS JetStream.
//!
//! Subjects (with the default prefix `vigil`):
//!
//! | subject | what | where |
//! |---|---|---|
//! | `vigil.events.<class>.<sensor>` | a batch of one endpoint's events of one OCSF class, a JSON array | one stream per class: `VIGIL_EVENTS_PROCESS_ACTIVITY`, … |
//! | `vigil.detect.<partition>.<sensor>` | the same batch, every class in the order stored: the detection work queue | stream `VIGIL_DETECT` (work queue) |
//! | `vigil.findings` | each finding the detection workers commit, OCSF JSON | stream `VIGIL_FINDINGS` |
//! | `vigil.commands.<sensor>` | commands were queued for `<sensor>`: the instance holding its session delivers them | core NATS |
//! | `vigil.notice` | the other [`Notice`]s between server instances (revocations, policies, rule switches, the live feed) | core NATS |
//! | `vigil.stored` | a wake-up for the store's log readers (the hunting indexer) | core NATS |
//!
//! The class streams are the events as others consume them (exporters, replays): one
//! subject per endpoint and class. Detection reads the work queue instead, for two reasons
//! the class streams cannot serve on NATS 2.9: an endpoint's events must reach one worker (its
//! correlation state and baseline live there), and in the order they were stored across
//! classes (a temporal correlation joins a process start and the connection it made). The
//! partition token is a stable hash of the sensor id: each partition is one durable pull
//! consumer filtering `vigil.detect.<partition>.*`, owned by one worker at a time
//! ([`super::lease`]). NATS 2.10 could compute the partition with a subject transform and feed
//! the queue from the class streams; Debian 12's 2.9 cannot, so the publisher writes both.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use vigil_ocsf::RawEvent;

use super::{Bus, BusError, EventsSubscription, Notice, Prepared};

mod layout;

#[cfg(test)]
use layout::MAX_PAYLOAD;
pub(crate) use layout::fnv1a;
pub use layout::{NatsConfig, class_token, encode_batches, partition_of, subject_token};

/// How long JetStream remembers message ids to drop a batch published twice.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How the detection stream's description records the partition count.
const PARTITIONS_NOTE: &str = "; detection partitions: ";
/// Notices a slow subscriber may fall behind by.
const NOTICE_CAPACITY: usize = 4096;
/// The classes whose streams are made at start; any other class gets its stream when its
/// first event arrives.
const CLASSES: [u32; 5] = [1001, 1007, 3002, 4001, 4003];

/// A notice as it travels: who sent it, so an instance ignores its own.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    notice: Notice,
}

/// The JetStream bus.
#[derive(Debug)]
pub struct NatsBus {
    cfg: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The detection work queue.
    detect: stream::Stream,
    /// The class tokens whose event streams exist.
    class_streams: Mutex<HashSet<String>>,
    leases: kv::Store,
    wake: watch::Sender<u64>,
    notices: broadcast::Sender<Notice>,
    /// Outgoing notices (subject, payload), published in order by one task.
    outbox: mpsc::Sender<(String, Vec<u8>)>,
}

impl NatsBus {
    /// Connects, creates the streams and the lease bucket if they are missing, and starts
    /// listening for notices. Fails with the reason when NATS cannot be reached or JetStream is
    /// off.
    pub async fn connect(cfg: NatsConfig) -> Result<Arc<Self>, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("vigil-server {}", cfg.instance))
            .connection_timeout(Duration::from_secs(5))
            .connect(cfg.url.as_str())
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot connect to {}: {e}", cfg.url)))?;
        let js = jetstream::new(client.clone());
        let detect = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream_name("DETECT"),
                description: Some(format!(
                    "Vigil detection work queue, one message per endpoint batch{PARTITIONS_NOTE}{}",
                    cfg.partitions
                )),
                subjects: vec![format!("{}.detect.*.*", cfg.prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                max_age: cfg.max_age,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("creating the detection stream", &e))?;
        js.get_or_create_stream(stream::Config {
            name: cfg.stream_name("FINDINGS"),
            description: Some("Vigil detection findings (OCSF 2004)".to_owned()),
            subjects: vec![format!("{}.findings", cfg.prefix)],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating the findings stream", &e))?;
        // The bucket's stream is made here rather than by `create_key_value`, which asks for
        // the account's limits first and cannot read NATS 2.9's answer. Same layout: one value
        // per key, values expire after the lease time.
        let bucket = format!("{}_detect_leases", cfg.prefix.replace(['.', '-'], "_"));
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("Which Vigil detection worker owns which partition".to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: cfg.lease_ttl,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating the lease bucket", &e))?;
        let leases = js
            .get_key_value(&bucket)
            .await
            .map_err(|e| unavailable("opening the lease bucket", &e))?;
        let (outbox, mut outgoing) = mpsc::channel::<(String, Vec<u8>)>(NOTICE_CAPACITY);
        let sender = client.clone();
        tokio::spawn(async move {
            while let Some((subject, payload)) = outgoing.recv().await {
                if let Err(error) = sender.publish(subject, payload.into()).await {
                    tracing::warn!(%error, "Cannot send a notice to the other instances");
                }
            }
        });
        let bus = Arc::new(Self {
            outbox,
            cfg,
            client,
            js,
            detect,
            class_streams: Mutex::new(HashSet::new()),
            leases,
            wake: watch::Sender::new(0),
            notices: broadcast::channel(NOTICE_CAPACITY).0,
        });
        for class in CLASSES {
            bus.ensure_class_stream(&class_token(class)).await?;
        }
        bus.check_partitions().await?;
        bus.listen().await?;
        Ok(bus)
    }

    /// Makes sure the stream of one class's events exists (made once per process).
    async fn ensure_class_stream(&self, token: &str) -> Result<(), BusError> {
        if self
            .class_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(token)
        {
            return Ok(());
        }
        let name = self.cfg.class_stream(token);
        let made = self
            .js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                description: Some(format!(
                    "Vigil endpoint events of class {token}, one message per endpoint batch"
                )),
                subjects: vec![format!("{}.events.{token}.*", self.cfg.prefix)],
                retention: stream::RetentionPolicy::Limits,
                max_age: self.cfg.max_age,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        if let Err(e) = made {
            // Vigil before per-class streams kept every class in one stream over the same
            // subjects, which NATS will not let two streams share.
            let old = self.cfg.stream_name("EVENTS");
            if self.js.get_stream(&old).await.is_ok() {
                return Err(BusError::Unavailable(format!(
                    "cannot create the stream {name}: the stream {old} of an earlier Vigil version holds the subjects {}.events.>; its events are in the store: delete it (`nats stream rm {old}`) and start again",
                    self.cfg.prefix
                )));
            }
            return Err(unavailable(&format!("creating the stream {name}"), &e));
        }
        self.class_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned());
        Ok(())
    }

    /// The configuration this bus runs with.
    pub fn config(&self) -> &NatsConfig {
        &self.cfg
    }

    /// The partition-lease bucket.
    pub fn lease_bucket(&self) -> &kv::Store {
        &self.leases
    }

    /// Which instance holds each partition's lease, by partition (what the detection workers
    /// agreed; for operators' tools and tests).
    pub async fn partition_owners(&self) -> Result<Vec<(u16, String)>, BusError> {
        let mut keys = self
            .leases
            .keys()
            .await
            .map_err(|e| unavailable("listing the leases", &e))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| unavailable("listing the leases", &e))?;
            if let Some(p) = k.strip_prefix("p.").and_then(|p| p.parse().ok())
                && let Ok(Some(v)) = self.leases.get(&k).await
            {
                out.push((p, String::from_utf8_lossy(&v).into_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The NATS client (for tests and the bench's measurements).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Refuses to run with another partition count than the detection stream was made with
    /// (it is written in the stream's description): two instances hashing endpoints
    /// differently would split their correlation state.
    async fn check_partitions(&self) -> Result<(), BusError> {
        let mut detect = self.detect.clone();
        let info = detect
            .info()
            .await
            .map_err(|e| unavailable("reading the detection stream", &e))?;
        let made_with = info
            .config
            .description
            .as_deref()
            .and_then(|d| d.rsplit_once(PARTITIONS_NOTE))
            .and_then(|(_, n)| n.trim().parse::<u16>().ok());
        match made_with {
            Some(n) if n != self.cfg.partitions => Err(BusError::Unavailable(format!(
                "the detection stream {} was made with {n} partitions and this instance was started with {}: start every instance with the same partition count",
                info.config.name, self.cfg.partitions
            ))),
            _ => Ok(()),
        }
    }

    /// Subscribes to notices, command notices and wake-ups from other instances.
    async fn listen(self: &Arc<Self>) -> Result<(), BusError> {
        let notices = self
            .client
            .subscribe(format!("{}.notice", self.cfg.prefix))
            .await
            .map_err(|e| unavailable("subscribing to notices", &e))?;
        let commands = self
            .client
            .subscribe(format!("{}.commands.*", self.cfg.prefix))
            .await
            .map_err(|e| unavailable("subscribing to command notices", &e))?;
        let mut notices = futures::stream::select(notices, commands);
        let mut stored = self
            .client
            .subscribe(format!("{}.stored", self.cfg.prefix))
            .await
            .map_err(|e| unavailable("subscribing to wake-ups", &e))?;
        // A flush only writes the subscriptions to the socket. The server reads one
        // connection's operations in order, so once it has answered a request sent after them
        // it holds the subscriptions: from here on nothing another instance sends is missed.
        self.detect
            .clone()
            .info()
            .await
            .map_err(|e| unavailable("subscribing to notices", &e))?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = notices.next() => {
                        let Some(msg) = msg else { return };
                        let Some(bus) = weak.upgrade() else { return };
                        match serde_json::from_slice::<Envelope>(&msg.payload) {
                            Ok(env) if env.origin != bus.cfg.instance => {
                                let _ = bus.notices.send(env.notice);
                            }
                            Ok(_) => {}
                            Err(error) => tracing::warn!(%error, "Unreadable notice on the bus; ignored"),
                        }
                    }
                    msg = stored.next() => {
                        if msg.is_none() { return }
                        let Some(bus) = weak.upgrade() else { return };
                        bus.wake.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
            }
        });
        Ok(())
    }

    /// The durable pull consumer of one detection partition, created if missing.
    pub async fn partition_consumer(
        &self,
        partition: u16,
    ) -> Result<consumer::PullConsumer, BusError> {
        let name = format!(
            "{}_detect_{partition}",
            self.cfg.prefix.replace(['.', '-'], "_")
        );
        self.detect
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("Vigil detection, partition {partition}")),
                    filter_subject: format!("{}.detect.{partition}.*", self.cfg.prefix),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.cfg.ack_wait,
                    max_ack_pending: 4096,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| unavailable("creating a detection consumer", &e))
    }

    /// Deletes everything this prefix made on the server: its streams (with their events and
    /// findings) and its lease bucket. For tests and benchmarks, which work under a prefix of
    /// their own; never called by the server.
    pub async fn remove(&self) -> Result<(), BusError> {
        let bucket = format!(
            "KV_{}_detect_leases",
            self.cfg.prefix.replace(['.', '-'], "_")
        );
        let mut names = vec![
            self.cfg.stream_name("DETECT"),
            self.cfg.stream_name("FINDINGS"),
            bucket,
        ];
        names.extend(self.event_streams().await?);
        for name in names {
            self.js
                .delete_stream(&name)
                .await
                .map_err(|e| unavailable(&format!("deleting {name}"), &e))?;
        }
        Ok(())
    }

    /// The names of this prefix's per-class event streams.
    pub async fn event_streams(&self) -> Result<Vec<String>, BusError> {
        let prefix = format!("{}_", self.cfg.stream_name("EVENTS"));
        let mut names = self.js.stream_names();
        let mut out = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| unavailable("listing the streams", &e))?;
            if name.starts_with(&prefix) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Messages of the detection queue no partition has acknowledged yet (pending plus in
    /// flight), summed over the partitions.
    pub async fn unscored(&self) -> Result<u64, BusError> {
        let mut total = 0u64;
        for p in 0..self.cfg.partitions {
            let mut c = self.partition_consumer(p).await?;
            let info = c
                .info()
                .await
                .map_err(|e| unavailable("reading a detection consumer", &e))?;
            total += info.num_pending + info.num_ack_pending as u64;
        }
        Ok(total)
    }

    /// Publishes a committed finding on `<prefix>.findings` (for exporters and other
    /// consumers; the store holds it already).
    pub async fn publish_finding(&self, uid: &str, json: Vec<u8>) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uid);
        self.js
            .publish_with_headers(
                format!("{}.findings", self.cfg.prefix),
                headers,
                json.into(),
            )
            .await
            .map_err(|e| unavailable("publishing a finding", &e))?
            .await
            .map_err(|e| unavailable("publishing a finding", &e))?;
        Ok(())
    }
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

#[async_trait]
impl Bus for NatsBus {
    fn prepare(&self, batches: &[(String, Vec<RawEvent>)]) -> Prepared {
        Prepared(encode_batches(&self.cfg, batches))
    }

    async fn publish(&self, prepared: Prepared) -> Result<(), BusError> {
        let events = format!("{}.events.", self.cfg.prefix);
        for (subject, _, _) in &prepared.0 {
            if let Some((token, _)) = subject
                .strip_prefix(&events)
                .and_then(|rest| rest.split_once('.'))
            {
                self.ensure_class_stream(token).await?;
            }
        }
        let mut acks = Vec::new();
        for (subject, id, payload) in prepared.0 {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            let ack = self
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| unavailable("publishing events", &e))?;
            acks.push(ack);
        }
        for ack in
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
        {
            ack.map_err(|e| unavailable("publishing events", &e))?;
        }
        self.client
            .publish(format!("{}.stored", self.cfg.prefix), Vec::new().into())
            .await
            .map_err(|e| unavailable("publishing a wake-up", &e))?;
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    fn subscribe_events(&self) -> EventsSubscription {
        EventsSubscription {
            rx: self.wake.subscribe(),
        }
    }

    fn notify(&self, notice: &Notice) {
        let env = Envelope {
            origin: self.cfg.instance.clone(),
            notice: notice.clone(),
        };
        let Ok(payload) = serde_json::to_vec(&env) else {
            return;
        };
        let subject = match notice {
            Notice::Commands { sensor_id } => self.cfg.commands_subject(sensor_id),
            _ => format!("{}.notice", self.cfg.prefix),
        };
        if self.outbox.try_send((subject, payload)).is_err() {
            tracing::warn!(
                "Notices are not leaving fast enough; one was dropped (instances re-read the store on their own schedule)"
            );
        }
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.notices.subscribe())
    }

    fn detection_stream(&self) -> Option<&NatsBus> {
        Some(self)
    }
}

#[cfg(test)]
pub(crate) mod tests;
